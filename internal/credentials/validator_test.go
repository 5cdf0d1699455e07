package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/ss3dev/integration-operator/internal/store"
)

func bearer(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

func decode(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body
}

func TestValidateAcceptsAndRefuses(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{})
	url := r.server.URL + "/credentials/validate"
	row, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read", "inventory:read"}, bcrypt.MinCost, nil)

	// Accepted three ways with store and scopes, in the body and the headers.
	for name, h := range map[string]http.Header{
		"bearer":    bearer(key.Presented),
		"x-api-key": {"X-API-Key": {key.Presented}},
	} {
		resp := get(t, url, h)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
		if resp.Header.Get(HeaderStoreID) != "store-1042" || resp.Header.Get(HeaderScopes) != "orders:read inventory:read" ||
			resp.Header.Get(HeaderCredentialID) != row.ID.String() {
			t.Errorf("%s: forward-auth headers %v", name, resp.Header)
		}
		body := decode(t, resp)
		if body["storeId"] != "store-1042" || body["valid"] != true || fmt.Sprint(body["scopes"]) != "[orders:read inventory:read]" {
			t.Errorf("%s: body %v", name, body)
		}
	}
	client, secret := seed(t, st, store.CredentialTypeOAuthClient, []string{"catalog:read"}, bcrypt.MinCost, nil)
	basic := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(client.ClientID+":"+secret.Secret))}}
	if resp := get(t, url, basic); resp.StatusCode != http.StatusOK {
		t.Fatalf("basic: %d", resp.StatusCode)
	}

	// A required scope the credential lacks is 403; one it holds is 200;
	// every one of several is checked, repeated or space-separated.
	for query, want := range map[string]int{
		"?scope=orders:read":                      http.StatusOK,
		"?scope=orders:read+inventory:read":       http.StatusOK,
		"?scope=customers:read":                   http.StatusForbidden,
		"?scope=orders:read&scope=customers:read": http.StatusForbidden,
		"?scope=customers:read&scope=orders:read": http.StatusForbidden,
		"?scope=orders:read%20customers:read":     http.StatusForbidden,
		"?scope=ORDERS":                           http.StatusBadRequest,
	} {
		resp := get(t, url+query, bearer(key.Presented))
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", query, resp.StatusCode, want)
		}
	}
	// A header the client sends neither replaces nor adds to the gateway's requirement.
	h := bearer(key.Presented)
	h.Set("X-Required-Scope", "orders:read")
	if resp := get(t, url+"?scope=customers:read", h); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a client header lowered the required scope: %d", resp.StatusCode)
	}

	// Refusals all say the same thing.
	other, _ := NewAPIKey()
	wrong, _ := RotateAPIKey(key.ClientID)
	_, inactive := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, func(c *store.Credential) { c.IsActive = false })
	past := time.Now().Add(-time.Minute)
	_, expired := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, func(c *store.Credential) { c.ExpiresAt = &past })
	refused := map[string]http.Header{
		"wrong secret":   bearer(wrong.Presented),
		"unknown id":     bearer(other.Presented),
		"inactive":       bearer(inactive.Presented),
		"expired":        bearer(expired.Presented),
		"garbage":        bearer("ss3_ak_nonsense"),
		"oversized":      bearer(strings.Repeat("a", 10_000)),
		"bad basic":      {"Authorization": {"Basic !!!"}},
		"api key basic":  {"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(key.ClientID+":"+key.Secret))}},
		"forged token":   bearer("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
		"wrong scheme":   {"Authorization": {"Digest " + key.Presented}},
		"no credentials": {},
	}
	for name, h := range refused {
		resp := get(t, url, h)
		body := decode(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || body["valid"] != false {
			t.Errorf("%s: %d %v", name, resp.StatusCode, body)
		}
		if reason := body["reason"]; reason != ReasonInvalid && reason != ReasonMissing {
			t.Errorf("%s: reason %v", name, reason)
		}
	}
}

func TestBcryptRunsOncePerCredential(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{})
	_, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			resp := get(t, r.server.URL+"/credentials/validate", bearer(key.Presented))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	hits := testutil.ToFloat64(r.metrics.CacheLookups.WithLabelValues("hit"))
	misses := testutil.ToFloat64(r.metrics.CacheLookups.WithLabelValues("miss"))
	// Concurrent first requests may all miss, but share one bcrypt; after
	// that every request is a hit.
	for range 20 {
		get(t, r.server.URL+"/credentials/validate", bearer(key.Presented)).Body.Close()
	}
	if got := testutil.ToFloat64(r.metrics.CacheLookups.WithLabelValues("hit")) - hits; got != 20 {
		t.Fatalf("after warm-up %v of 20 were cache hits (misses before: %v)", got, misses)
	}
}

func TestChangesReachEveryReplicaWithinASecond(t *testing.T) {
	st := startStore(t)
	a := startReplica(t, st, ValidatorConfig{})
	b := startReplica(t, st, ValidatorConfig{})
	ctx := context.Background()
	row, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	for _, r := range []*replica{a, b} {
		if resp := get(t, r.server.URL+"/credentials/validate", bearer(key.Presented)); resp.StatusCode != http.StatusOK {
			t.Fatalf("warm-up: %d", resp.StatusCode)
		}
	}
	waitRefused := func(what string) {
		t.Helper()
		start := time.Now()
		for {
			resp := get(t, b.server.URL+"/credentials/validate", bearer(key.Presented))
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				t.Logf("%s refused on the other replica after %v", what, time.Since(start).Round(time.Millisecond))
				if time.Since(start) > time.Second {
					t.Errorf("%s took longer than 1s to reach the other replica", what)
				}
				return
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s never reached the other replica", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Deactivation, then reactivation, then revocation, each written as the reconciler would.
	deactivated := row
	deactivated.IsActive = false
	if _, err := st.UpdateCredentialSpec(ctx, deactivated); err != nil {
		t.Fatal(err)
	}
	waitRefused("deactivation")
	if _, err := st.UpdateCredentialSpec(ctx, row); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if resp := get(t, b.server.URL+"/credentials/validate", bearer(key.Presented)); resp.StatusCode != http.StatusOK {
		t.Fatalf("reactivated: %d", resp.StatusCode)
	}
	if _, err := st.RevokeCredential(ctx, row.ID); err != nil {
		t.Fatal(err)
	}
	waitRefused("revocation")

	// Usage is written behind: last_used_at appears without a write per request.
	time.Sleep(1500 * time.Millisecond)
	got, _, err := st.GetCredential(ctx, row.ID)
	if err != nil || got.LastUsedAt == nil {
		t.Fatalf("last_used_at not written behind: %v", err)
	}
}

func TestRotationGraceAndExpiryWhileCached(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{})
	ctx := context.Background()
	row, old := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	validate := func(key string) int {
		resp := get(t, r.server.URL+"/credentials/validate", bearer(key))
		resp.Body.Close()
		return resp.StatusCode
	}
	if validate(old.Presented) != http.StatusOK {
		t.Fatal("old key before rotation")
	}
	next, _ := RotateAPIKey(row.ClientID)
	hash, _ := bcrypt.GenerateFromPassword([]byte(next.Secret), bcrypt.MinCost)
	if err := st.RotateCredential(ctx, row.ID, store.Rotation{Hash: string(hash), PreviousExpiresAt: time.Now().Add(1500 * time.Millisecond), IssuedAt: time.Now(), Request: "r1"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if validate(next.Presented) != http.StatusOK || validate(old.Presented) != http.StatusOK {
		t.Fatal("during the grace period both keys are accepted")
	}
	time.Sleep(1500 * time.Millisecond)
	// The grace period ended with no database write: the cached entry knows its deadline.
	if validate(old.Presented) != http.StatusUnauthorized {
		t.Fatal("the old key is accepted after the grace period")
	}
	if validate(next.Presented) != http.StatusOK {
		t.Fatal("the new key stopped working")
	}

	// Expiry, likewise, needs no notification.
	soon := time.Now().Add(700 * time.Millisecond)
	_, expiring := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, func(c *store.Credential) { c.ExpiresAt = &soon })
	if validate(expiring.Presented) != http.StatusOK {
		t.Fatal("before expiry")
	}
	time.Sleep(time.Until(soon) + 50*time.Millisecond)
	if validate(expiring.Presented) != http.StatusUnauthorized {
		t.Fatal("accepted after expiry")
	}
}

func TestBcryptBudgetWithoutFingerprint(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{BcryptBurst: 3, BcryptsPerMinute: 1})
	// A row from before fingerprints: every new secret needs a bcrypt, within budget.
	_, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	for range 5 {
		wrong, _ := RotateAPIKey(key.ClientID)
		get(t, r.server.URL+"/credentials/validate", bearer(wrong.Presented)).Body.Close()
	}
	if got := testutil.ToFloat64(r.metrics.Bcrypts); got != 3 {
		t.Fatalf("a burst of 3 allows 3 bcrypts, ran %v", got)
	}
	if got := testutil.ToFloat64(r.metrics.Validations.WithLabelValues(string(OutcomeThrottled))); got != 2 {
		t.Fatalf("after a burst of 3 bcrypts, the next 2 should be throttled, got %v", got)
	}
	// Over budget, even the right secret is not tried: the answer says throttled, not invalid.
	resp := get(t, r.server.URL+"/credentials/validate", bearer(key.Presented))
	body := decode(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests || body["reason"] != ReasonThrottled || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("over budget: %d %v %v", resp.StatusCode, body, resp.Header)
	}
}

func TestOAuthTokenEndpoint(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{})
	client, secret := seed(t, st, store.CredentialTypeOAuthClient, []string{"catalog:read", "orders:read"}, bcrypt.MinCost, nil)
	post := func(form url.Values, basic bool) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, r.server.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(client.ClientID, secret.Secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, decode(t, resp)
	}

	resp, body := post(url.Values{"grant_type": {"client_credentials"}, "scope": {"orders:read"}}, true)
	if resp.StatusCode != http.StatusOK || body["token_type"] != "Bearer" || body["scope"] != "orders:read" ||
		body["expires_in"] != float64(60) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token: %d %v %v", resp.StatusCode, body, resp.Header)
	}
	token := body["access_token"].(string)
	vr := get(t, r.server.URL+"/credentials/validate", bearer(token))
	vb := decode(t, vr)
	if vr.StatusCode != http.StatusOK || vb["storeId"] != "store-1042" || fmt.Sprint(vb["scopes"]) != "[orders:read]" {
		t.Fatalf("validate with the token: %d %v", vr.StatusCode, vb)
	}
	if resp := get(t, r.server.URL+"/credentials/validate?scope=catalog:read", bearer(token)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the token is limited to the scopes asked for, got %d", resp.StatusCode)
	}
	// Client credentials in the form work too; no scope means all the client's.
	resp, body = post(url.Values{"grant_type": {"client_credentials"}, "client_id": {client.ClientID}, "client_secret": {secret.Secret}}, false)
	if resp.StatusCode != http.StatusOK || body["scope"] != "catalog:read orders:read" {
		t.Fatalf("form auth: %d %v", resp.StatusCode, body)
	}

	cases := []struct {
		name   string
		form   url.Values
		basic  bool
		status int
		err    string
	}{
		{"wrong grant", url.Values{"grant_type": {"password"}}, true, 400, "unsupported_grant_type"},
		{"scope not granted", url.Values{"grant_type": {"client_credentials"}, "scope": {"customers:read"}}, true, 400, "invalid_scope"},
		{"wrong secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {client.ClientID}, "client_secret": {"ss3_cs_x"}}, false, 401, "invalid_client"},
		{"two auth methods", url.Values{"grant_type": {"client_credentials"}, "client_id": {client.ClientID}}, true, 400, "invalid_request"},
	}
	for _, tc := range cases {
		resp, body := post(tc.form, tc.basic)
		if resp.StatusCode != tc.status || body["error"] != tc.err {
			t.Errorf("%s: %d %v", tc.name, resp.StatusCode, body)
		}
	}
	// API keys cannot use the grant.
	_, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	if resp, body := post(url.Values{"grant_type": {"client_credentials"}, "client_id": {key.ClientID}, "client_secret": {key.Secret}}, false); resp.StatusCode != 401 {
		t.Errorf("api key at the token endpoint: %d %v", resp.StatusCode, body)
	}

	// Revoking the client stops its tokens at once.
	if _, err := st.RevokeCredential(context.Background(), client.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if resp := get(t, r.server.URL+"/credentials/validate", bearer(token)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token of a revoked client: %d", resp.StatusCode)
	}
	if resp, err := http.Get(r.server.URL + "/oauth/token"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /oauth/token: %v %v", resp.StatusCode, err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// A change to a credential that leaves its secrets as they were (here its
// scopes) reaches the cache at once and costs no bcrypt: the re-read entry
// keeps the secrets already verified.
func TestAChangeThatKeepsTheSecretCostsNoBcrypt(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{})
	row, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.MinCost, nil)
	if resp := get(t, r.server.URL+"/credentials/validate", bearer(key.Presented)); resp.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %d", resp.StatusCode)
	}
	bcrypts := testutil.ToFloat64(r.metrics.Bcrypts)
	if bcrypts != 1 {
		t.Fatalf("warm-up ran %v bcrypts, want 1", bcrypts)
	}
	changed := row
	changed.Scopes = []string{"orders:read", "inventory:read"}
	if _, err := st.UpdateCredentialSpec(context.Background(), changed); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		body := decode(t, get(t, r.server.URL+"/credentials/validate", bearer(key.Presented)))
		if scopes, _ := body["scopes"].([]any); len(scopes) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new scopes never reached the cache: %v", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.metrics.Bcrypts); got != bcrypts {
		t.Fatalf("the scope change cost %v more bcrypts", got-bcrypts)
	}
}
