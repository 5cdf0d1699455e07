package credentials

import (
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"

	"github.com/ss3dev/integration-operator/internal/store"
)

// attack sends n wrong secrets for clientID in parallel, with the holder's
// own key once in the middle of them, and returns the holder's status and
// how many wrong guesses were admitted.
func attack(t *testing.T, r *replica, key Issued, n int) (holder int, admitted int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		wg.Go(func() {
			if i == n/2 {
				resp := get(t, r.server.URL+"/credentials/validate", bearer(key.Presented))
				resp.Body.Close()
				holder = resp.StatusCode
			}
			wrong, _ := RotateAPIKey(key.ClientID)
			resp := get(t, r.server.URL+"/credentials/validate", bearer(wrong.Presented))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return holder, admitted
}

func TestParallelWrongSecretsAreBoundedAndDoNotLockOutTheHolder(t *testing.T) {
	st := startStore(t)
	const burst = 4
	cfg := ValidatorConfig{BcryptBurst: burst, BcryptsPerMinute: 1, BcryptConcurrency: 2}

	// A row whose fingerprint is not known yet (issued before fingerprints):
	// 100 parallel wrong secrets run at most the burst of bcrypts.
	legacy := startReplica(t, st, cfg)
	_, key := seed(t, st, store.CredentialTypeAPIKey, []string{"orders:read"}, bcrypt.DefaultCost, nil)
	if _, admitted := attack(t, legacy, key, 100); admitted != 0 {
		t.Fatalf("%d wrong secrets admitted", admitted)
	}
	if got := testutil.ToFloat64(legacy.metrics.Bcrypts); got > burst {
		t.Fatalf("100 parallel wrong secrets ran %v bcrypts, the budget is %d", got, burst)
	}

	// The holder's first success records the fingerprint (here on a fresh
	// replica, as the budget above is spent). From then on, on any replica,
	// wrong guesses are refused before bcrypt and the holder is admitted
	// while 100 of them arrive in parallel.
	learner := startReplica(t, st, cfg)
	if resp := get(t, learner.server.URL+"/credentials/validate", bearer(key.Presented)); resp.StatusCode != http.StatusOK {
		t.Fatalf("the holder on a fresh replica: %d", resp.StatusCode)
	}
	row, _, err := st.GetCredentialByClientID(t.Context(), key.ClientID)
	if err != nil || row.SecretFingerprint != Fingerprint(key.ClientID, key.Secret) {
		t.Fatalf("fingerprint not recorded after the first success: %v", err)
	}
	fresh := startReplica(t, st, cfg)
	holder, admitted := attack(t, fresh, key, 100)
	if holder != http.StatusOK || admitted != 0 {
		t.Fatalf("during the attack the holder got %d and %d wrong secrets were admitted", holder, admitted)
	}
	if got := testutil.ToFloat64(fresh.metrics.Bcrypts); got != 1 {
		t.Fatalf("with the fingerprint known only the holder's bcrypt should run, ran %v", got)
	}
	if got := testutil.ToFloat64(fresh.metrics.Validations.WithLabelValues(string(OutcomeThrottled))); got != 0 {
		t.Fatalf("%v requests throttled: wrong guesses spent the holder's budget", got)
	}
}
