package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// A real Prometheus (Debian's) scrapes the three running components (the
// manager against a real kube-apiserver, the dispatcher, the credentials
// API), labelled as the chart's ServiceMonitor labels them, with the
// chart's alert rules loaded; an endpoint that fails every attempt of a
// compressed retry schedule dead-letters its deliveries, and the
// dead-letter alert fires while the component-down and -absent alerts
// stay quiet.
func TestPrometheusScrapesTheComponentsAndTheDeadLetterAlertFires(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: run hack/install-system-deps.sh (Debian's prometheus package)")
	}
	b := startReplicaBed(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	metricsAddr := freeAddr(t)
	b.start("dispatcher", "--metrics-bind-address", metricsAddr, "--retry-schedule", "0s,1s")
	kube, err := testbed.StartKube()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kube.Close)
	kubeconfig, err := kube.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	managerMetrics := freeAddr(t)
	b.run("manager", []string{"KUBECONFIG=" + kubeconfig, "DATABASE_URL=" + b.bed.DatabaseURL, "VAULT_ADDR=" + b.bed.Vault.Addr(),
		"VAULT_TOKEN=" + b.bed.Vault.Token()}, "manager", "--metrics-bind-address", managerMetrics, "--health-probe-bind-address", freeAddr(t),
		"--delivery-status-interval", "1s")
	_, credentialsMetrics, stopCredentials, _ := startCredentialsAPI(t, b.bed.DatabaseURL)
	t.Cleanup(stopCredentials)

	// The subscription is made as a user makes it: the manager writes its
	// row and signing secret (and would sweep a row with no object).
	ctx := context.Background()
	sub := &integrationsv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Name: "always-failing", Namespace: "default"},
		Spec: integrationsv1.WebhookSubscriptionSpec{StoreID: "store-a", DisplayName: "Always failing", TargetURL: failing.URL,
			AllowInsecureHTTP: true, Events: []integrationsv1.EventType{"order.*"}}}
	if err := kube.Client.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, time.Minute, 200*time.Millisecond, "the manager stores the subscription", func() error {
		ids, err := b.st.ActiveSubscriptionIDsUpdatedBefore(ctx, time.Now())
		if err == nil && !slices.Contains(ids, uuid.MustParse(string(sub.UID))) {
			err = fmt.Errorf("active subscriptions %v, not %s", ids, sub.UID)
		}
		return err
	})

	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
- job_name: integration-operator-metrics
  static_configs:
  - {targets: [%q], labels: {endpoint: manager-metrics}}
  - {targets: [%q], labels: {endpoint: dispatcher-metrics}}
- job_name: integration-operator-credentials-api
  static_configs:
  - {targets: [%q], labels: {endpoint: metrics}}
`, filepath.Join(root, "charts", "integration-operator", "files", "prometheus-rules.yaml"), managerMetrics, metricsAddr, credentialsMetrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	promAddr := freeAddr(t)
	prom := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr)
	logPath := filepath.Join(dir, "prometheus.log")
	logf, _ := os.Create(logPath)
	prom.Stdout, prom.Stderr = logf, logf
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("--- prometheus log ---\n%s", data)
		}
	})
	api := func(path string, into any) error {
		resp, err := http.Get("http://" + promAddr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(into)
	}
	query := func(q string) (float64, error) {
		var r struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := api("/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
			return 0, err
		}
		if len(r.Data.Result) != 1 {
			return 0, fmt.Errorf("%s: %d series", q, len(r.Data.Result))
		}
		var v float64
		_, err := fmt.Sscan(r.Data.Result[0].Value[1].(string), &v)
		return v, err
	}
	testbed.Eventually(t, time.Minute, 200*time.Millisecond, "Prometheus scrapes every component", func() error {
		up, err := query(`sum(up{job=~"integration-operator-.*"})`)
		if err == nil && up != 3 {
			err = fmt.Errorf("%v of 3 targets up", up)
		}
		return err
	})
	// Each target is the component it is labelled as: its own metrics.
	for endpoint, metric := range map[string]string{"manager-metrics": "integration_operator_status_pass_seconds_count",
		"dispatcher-metrics": "dispatcher_batch_retries_total", "metrics": "credentials_change_feed_up"} {
		testbed.Eventually(t, 30*time.Second, 200*time.Millisecond, endpoint+" serves "+metric, func() error {
			_, err := query(`count(` + metric + `{endpoint="` + endpoint + `"}) > 0`)
			return err
		})
	}

	b.produce(0, 3)
	alerts := func() (map[string]string, error) {
		var r struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if err := api("/api/v1/alerts", &r); err != nil {
			return nil, err
		}
		states := map[string]string{}
		for _, a := range r.Data.Alerts {
			states[a.Labels["alertname"]] = a.State
		}
		return states, nil
	}
	testbed.Eventually(t, 2*time.Minute, 500*time.Millisecond, "the dead-letter alert fires", func() error {
		states, err := alerts()
		if err != nil {
			return err
		}
		if states["IntegrationDeadLettersRising"] != "firing" {
			dead, _ := query(`dispatcher_delivery_outcomes_total{status="DEAD_LETTERED"}`)
			return fmt.Errorf("alerts %v; dead letters scraped: %v", states, dead)
		}
		return nil
	})
	dead, err := query(`dispatcher_delivery_outcomes_total{status="DEAD_LETTERED"}`)
	if err != nil || dead != 3 {
		t.Errorf("Prometheus saw %v dead letters (%v), want the 3 events'", dead, err)
	}
	states, err := alerts()
	if err != nil {
		t.Fatal(err)
	}
	// What the failing endpoint causes may show (its open circuit, the
	// failure ratio); nothing else is wrong.
	caused := map[string]bool{"IntegrationDeadLettersRising": true, "IntegrationSubscriptionDeliveriesFailing": true,
		"IntegrationDeliveryFailureRatioHigh": true}
	for name, state := range states {
		if !caused[name] {
			t.Errorf("alert %s is %s; only the failing endpoint's should show", name, state)
		}
	}
}
