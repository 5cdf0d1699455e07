package credentials

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/ss3dev/integration-operator/internal/store"
)

// BenchmarkCredentialsAPI measures GET /credentials/validate over loopback
// HTTP with a cached credential, next to the same HTTP stack answering a
// constant (the ceiling), and the cold path: one database lookup and one
// bcrypt at the production cost of 12; and a wrong guess, which the
// fingerprint refuses without bcrypt.
//
//	go test -run '^$' -bench CredentialsAPI ./internal/credentials/
func BenchmarkCredentialsAPI(b *testing.B) {
	st := startStore(b)
	r := startReplica(b, st, ValidatorConfig{})
	row, key := seed(b, st, store.CredentialTypeAPIKey, []string{"orders:read", "inventory:read"}, 12, nil)

	constant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set(HeaderStoreID, row.StoreID)
		h.Set(HeaderScopes, "orders:read inventory:read")
		h.Set(HeaderClientID, row.ClientID)
		h.Set(HeaderCredentialID, row.ID.String())
		writeJSON(w, http.StatusOK, validResponse{StoreID: row.StoreID, Scopes: row.Scopes, Valid: true})
	}))
	defer constant.Close()

	warm := get(b, r.server.URL+"/credentials/validate", bearer(key.Presented))
	warm.Body.Close()
	if warm.StatusCode != http.StatusOK {
		b.Fatalf("warm-up: %d", warm.StatusCode)
	}

	b.Run("cached", func(b *testing.B) { benchHTTP(b, r.server.URL+"/credentials/validate", key.Presented) })
	b.Run("constant-ceiling", func(b *testing.B) { benchHTTP(b, constant.URL+"/credentials/validate", key.Presented) })
	// A wrong guess for a real client id, once the holder's first success
	// has recorded the fingerprint: refused without bcrypt.
	b.Run("wrong-secret", func(b *testing.B) {
		clientID, _, _ := ParseAPIKey(key.Presented)
		for b.Loop() {
			wrong, _ := RotateAPIKey(clientID)
			if _, outcome, err := r.validator.ValidateSecret(context.Background(), clientID, wrong.Secret); err != nil || outcome != OutcomeWrongSecret {
				b.Fatalf("%v %v", outcome, err)
			}
		}
	})
	b.Run("cold-bcrypt-cost-12", func(b *testing.B) {
		clientID, secret, _ := ParseAPIKey(key.Presented)
		for b.Loop() {
			// A fresh validator has an empty cache: lookup plus one bcrypt.
			v, err := NewValidator(st, ValidatorConfig{}, r.metrics, logr.Discard())
			if err != nil {
				b.Fatal(err)
			}
			if _, outcome, err := v.ValidateSecret(context.Background(), clientID, secret); err != nil || outcome != OutcomeValid {
				b.Fatalf("%v %v", outcome, err)
			}
		}
	})
}

// benchHTTP drives url from 8 keep-alive clients and reports throughput and
// latency percentiles.
func benchHTTP(b *testing.B, url, key string) {
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism(4) // 4 per core: 8 concurrent callers on 2 cores
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		all = append(all, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
