package credentials

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// replica is one credentials API process: its own validator and HTTP server
// over the shared database.
type replica struct {
	validator *Validator
	metrics   *Metrics
	server    *httptest.Server
}

var testTokenKey = []byte("0123456789abcdef0123456789abcdef-test-key")

func startReplica(t testing.TB, st *store.Store, cfg ValidatorConfig) *replica {
	t.Helper()
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(st, cfg, metrics, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(testTokenKey, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { v.Listen(ctx); done <- struct{}{} }()
	go func() { v.FlushUsage(ctx); done <- struct{}{} }()
	srv := httptest.NewServer((&Server{Validator: v, Tokens: tokens, Metrics: metrics, Log: logr.Discard()}).Handler())
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		<-done
	})
	testbed.Eventually(t, 10*time.Second, 10*time.Millisecond, "validator listening", v.Ready)
	return &replica{validator: v, metrics: metrics, server: srv}
}

func startStore(t testing.TB) *store.Store {
	t.Helper()
	return testbed.Start(t, testbed.Needs{Postgres: true}).Store(t)
}

// seed issues a credential straight into the store, as the reconciler would.
func seed(t testing.TB, st *store.Store, typ string, scopes []string, cost int, mutate func(*store.Credential)) (store.Credential, Issued) {
	t.Helper()
	var issued Issued
	var err error
	if typ == store.CredentialTypeOAuthClient {
		issued, err = NewOAuthClient()
	} else {
		issued, err = NewAPIKey()
	}
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(issued.Secret), cost)
	if err != nil {
		t.Fatal(err)
	}
	row := store.Credential{ID: uuid.New(), StoreID: "store-1042", Name: "test", Type: typ, ClientID: issued.ClientID,
		HashedSecret: string(hash), Scopes: scopes, IsActive: true, IssuedAt: time.Now(), CreatedBy: "test"}
	if mutate != nil {
		mutate(&row)
	}
	if err := st.InsertCredential(context.Background(), row); err != nil {
		t.Fatal(err)
	}
	return row, issued
}

func get(t testing.TB, url string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
