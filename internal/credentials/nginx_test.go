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
      auth_request_set $ss3_status $upstream_status;
      error_page 500 = @ss3_auth_error;
      proxy_set_header X-SS3-Store-Id $ss3_store;
      proxy_set_header X-SS3-Scopes $ss3_scopes;
      proxy_pass http://%[3]s;
    }
    # auth_request passes on only 401 and 403; 429 and 503 become 500.
    location @ss3_auth_error {
      if ($ss3_status = 429) { return 429; }
      return 503;
    }
    location /customers/ {
      auth_request /_ss3_auth_customers;
      proxy_pass http://%[3]s;
    }
    location /fulfilment/ {
      auth_request /_ss3_auth_fulfilment;
      proxy_pass http://%[3]s;
    }
    location = /_ss3_auth {
      internal;
      proxy_pass http://%[2]s/credentials/validate;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
    }
    # The required scope is in the auth request's URL, which only this
    # configuration sets: nothing the client sends can change it.
    location = /_ss3_auth_customers {
      internal;
      proxy_pass http://%[2]s/credentials/validate?scope=customers:read;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }
    location = /_ss3_auth_fulfilment {
      internal;
      proxy_pass http://%[2]s/credentials/validate?scope=orders:read&scope=inventory:write;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
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
	// The client tries to set the required scope itself, by header and by
	// query string: it still needs customers:read.
	spoofed := bearer(key.Presented)
	spoofed.Set("X-Required-Scope", "orders:read")
	spoofed.Set("X-SS3-Required-Scope", "orders:read")
	for _, path := range []string{"/customers/7", "/customers/7?scope=orders:read", "/customers/7?scope=orders:read&scope=orders:read"} {
		if status, body := call(path, spoofed); status != http.StatusForbidden || strings.Contains(body, "upstream") {
			t.Errorf("%s with a client-set scope: %d %q", path, status, body)
		}
	}
	// Over a client's bcrypt budget (a secret with no fingerprint yet), the
	// gateway says 429, not 500.
	_, fresh := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	statuses := map[int]int{}
	for range 7 {
		wrong, _ := RotateAPIKey(fresh.ClientID)
		status, _ := call("/orders/1", bearer(wrong.Presented))
		statuses[status]++
	}
	if statuses[http.StatusUnauthorized] != 5 || statuses[http.StatusTooManyRequests] != 2 {
		t.Errorf("7 wrong secrets with a burst of 5 through nginx: %v", statuses)
	}
	// Two required scopes: holding one of them is not enough.
	if status, body := call("/fulfilment/1", bearer(key.Presented)); status != http.StatusForbidden || strings.Contains(body, "upstream") {
		t.Errorf("a key with orders:read but not inventory:write: %d %q", status, body)
	}
	_, both := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read", "inventory:write"}, bcrypt.MinCost, nil)
	if status, body := call("/fulfilment/1", bearer(both.Presented)); status != http.StatusOK {
		t.Errorf("a key with both required scopes: %d %q", status, body)
	}
}
