package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// TestCredentialsAPICommand runs the subcommand as a deployment would and
// checks its probes, a validation and its metrics, then a clean shutdown.
func TestCredentialsAPICommand(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	st := bed.Store(t)
	key := issueAPIKey(t, st, "store-7", "orders:read")

	t.Setenv("TOKEN_SIGNING_KEY", base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	apiAddr, metricsAddr, stop, done := startCredentialsAPI(t, bed.DatabaseURL)
	req, _ := http.NewRequest(http.MethodGet, "http://"+apiAddr+"/credentials/validate", nil)
	req.Header.Set("X-API-Key", key.Presented)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"storeId":"store-7"`) {
		t.Fatalf("validate: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`credentials_validations_total{outcome="valid"} 1`, "credentials_validation_duration_seconds_bucket",
		`credentials_cache_lookups_total{result="miss"} 1`, "credentials_bcrypt_comparisons_total 1", "credentials_change_feed_up 1"} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not shut down")
	}
}

func TestCredentialsAPIRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--stale-window=-1s", "--stale-window"},
		{"--bcrypt-burst=0", "--bcrypt-burst"},
		{"--feed-ping-interval=0s", "--feed-ping-interval"},
		{"--ignore-scope-query", "--required-scope-header"},
	} {
		root := newRootCommand()
		root.SetArgs([]string{"credentials-api", "--database-url", "postgres://127.0.0.1:1/x", tc.args})
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}

// startCredentialsAPI runs the subcommand as a deployment would, until
// stop; done has what it returned. It returns once /readyz answers 200.
func startCredentialsAPI(t *testing.T, databaseURL string, args ...string) (apiAddr, metricsAddr string, stop func(), done chan error) {
	t.Helper()
	apiAddr, metricsAddr = freeAddr(t), freeAddr(t)
	runCtx, stop := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() {
		root := newRootCommand()
		root.SetArgs(append([]string{"credentials-api", "--database-url", databaseURL, "--listen-address", apiAddr,
			"--metrics-bind-address", metricsAddr}, args...))
		done <- root.ExecuteContext(runCtx)
	}()
	testbed.Eventually(t, 15*time.Second, 50*time.Millisecond, "credentials API ready", func() error {
		resp, err := http.Get("http://" + apiAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		return nil
	})
	return apiAddr, metricsAddr, stop, done
}
