package credentials

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// TestNginxAuthRequest puts a real nginx with auth_request in front of a
// sample upstream, with the credentials API as its auth endpoint, as a
// gateway would use it as is.
func TestNginxAuthRequest(t *testing.T) {
	st := startStore(t)
	api := startReplica(t, st, ValidatorConfig{})
	_, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The gateway passes on who is calling, from the auth answer's headers.
		fmt.Fprintf(w, "upstream %s store=%s scopes=%s", r.URL.Path, r.Header.Get(HeaderStoreID), r.Header.Get(HeaderScopes))
	}))
	defer upstream.Close()
	apiHost := strings.TrimPrefix(api.server.URL, "http://")
	upstreamHost := strings.TrimPrefix(upstream.URL, "http://")

	gateway, err := testbed.StartNginx(context.Background(), func(listen string) string {
		return fmt.Sprintf(`
  server {
    listen %[1]s;
    location / {
      auth_request /_ss3_auth;
      auth_request_set $ss3_store $upstream_http_x_ss3_store_id;
      auth_request_set $ss3_scopes $upstream_http_x_ss3_scopes;
      proxy_set_header X-SS3-Store-Id $ss3_store;
      proxy_set_header X-SS3-Scopes $ss3_scopes;
      proxy_pass http://%[3]s;
    }
    location /customers/ {
      auth_request /_ss3_auth_customers;
      proxy_pass http://%[3]s;
    }
    location = /_ss3_auth {
      internal;
      proxy_pass http://%[2]s/credentials/validate;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
    }
    location = /_ss3_auth_customers {
      internal;
      proxy_pass http://%[2]s/credentials/validate;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Required-Scope customers:read;
    }
  }`, listen, apiHost, upstreamHost)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gateway.Close()

	call := func(path string, h http.Header) (int, string) {
		resp := get(t, gateway.URL()+path, h)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	status, body := call("/orders/42", bearer(key.Presented))
	if status != http.StatusOK || body != "upstream /orders/42 store=store-1042 scopes=orders:read" {
		t.Fatalf("a good key: %d %q", status, body)
	}
	status, body = call("/orders/42", http.Header{"X-API-Key": {key.Presented}})
	if status != http.StatusOK {
		t.Fatalf("a good key in X-API-Key: %d %q", status, body)
	}
	wrong, _ := RotateAPIKey(key.ClientID)
	for name, h := range map[string]http.Header{"bad key": bearer(wrong.Presented), "no key": {}} {
		if status, body := call("/orders/42", h); status != http.StatusUnauthorized || strings.Contains(body, "upstream") {
			t.Errorf("%s reached the upstream: %d %q", name, status, body)
		}
	}
	if status, body := call("/customers/7", bearer(key.Presented)); status != http.StatusForbidden || strings.Contains(body, "upstream") {
		t.Errorf("a key without customers:read: %d %q", status, body)
	}
}
