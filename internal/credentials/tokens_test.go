package credentials

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

func TestTokenMintedBeforeARotationIsRefused(t *testing.T) {
	st := startStore(t)
	r := startReplica(t, st, ValidatorConfig{})
	client, old := seed(t, st, store.CredentialTypeOAuthClient, []string{"orders:read"}, bcrypt.MinCost, nil)
	mint := func(secret string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, r.server.URL+"/oauth/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(client.ClientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
			t.Fatalf("token: %d", resp.StatusCode)
		}
		return body.AccessToken
	}
	before := mint(old.Secret)
	if status(t, r, before) != http.StatusOK {
		t.Fatal("a fresh token is refused")
	}

	// Rotate (the old secret keeps a grace period), as the reconciler does.
	next, _ := RotateOAuthClient(client.ClientID)
	hash, _ := bcrypt.GenerateFromPassword([]byte(next.Secret), bcrypt.MinCost)
	if err := st.RotateCredential(context.Background(), client.ID, store.Rotation{Hash: string(hash), PreviousExpiresAt: time.Now().Add(time.Hour), IssuedAt: time.Now(), Request: "r1"}); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, 2*time.Second, 5*time.Millisecond, "token minted before the rotation refused", func() error {
		if s := status(t, r, before); s != http.StatusUnauthorized {
			return fmt.Errorf("status %d", s)
		}
		return nil
	})
	// Tokens minted since, within the same second, with the new secret or the
	// old one in its grace period, are accepted.
	for name, secret := range map[string]string{"new secret": next.Secret, "previous secret": old.Secret} {
		if s := status(t, r, mint(secret)); s != http.StatusOK {
			t.Errorf("a token minted after the rotation with the %s: %d", name, s)
		}
	}
}
