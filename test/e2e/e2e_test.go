// Package e2e drives the built binary as a user would: the manager,
// dispatcher and credentials API run as processes against a real API
// server, Postgres, Vault and a Kafka-protocol broker; the test applies
// YAML and reads results with kubectl and curl.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ss3dev/integration-operator/internal/connectors/inbound"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

type world struct {
	t          *testing.T
	dir        string
	bin        string
	kubeconfig string
	env        []string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// run runs a command to completion and returns its output.
func (w *world) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = w.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (w *world) kubectl(args ...string) string {
	w.t.Helper()
	out, err := w.run("kubectl", append([]string{"--kubeconfig", w.kubeconfig}, args...)...)
	if err != nil {
		w.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// start runs the binary in the background, its output in a log file.
func (w *world) start(logName string, args ...string) string {
	w.t.Helper()
	logPath := filepath.Join(w.dir, logName+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(w.bin, args...)
	cmd.Env = w.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if w.t.Failed() {
			data, _ := os.ReadFile(logPath)
			w.t.Logf("--- %s log (tail) ---\n%s", logName, tail(string(data), 40))
		}
	})
	return logPath
}

// startReceiver runs the partner's receiver for subscription's
// deliveries on addr, with the signing secret from the subscription's
// Secret, and returns the secret and the receiver's log.
func (w *world) startReceiver(addr, subscription string) (secret []byte, logPath string) {
	w.t.Helper()
	secret, err := base64.StdEncoding.DecodeString(w.kubectl("get", "secret", subscription+"-signing-secret", "-o", "jsonpath={.data.secret}"))
	if err != nil {
		w.t.Fatal(err)
	}
	secretFile := filepath.Join(w.dir, subscription+"-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		w.t.Fatal(err)
	}
	logPath = w.start("receiver-"+subscription, "receive", "--listen", addr, "--secret-file", secretFile)
	w.eventually(10*time.Second, "receiver up", func() error {
		if data, _ := os.ReadFile(logPath); !strings.Contains(string(data), "receiving on") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	return secret, logPath
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (w *world) eventually(timeout time.Duration, what string, cond func() error) {
	w.t.Helper()
	testbed.Eventually(w.t, timeout, 200*time.Millisecond, what, cond)
}

// newWorld starts the test bed and builds the binary, with the
// environment the components read, and migrates the database.
func newWorld(t *testing.T) (*world, *testbed.Bed) {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatalf("kubectl is needed (hack/install-system-deps.sh installs it): %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is needed (hack/install-system-deps.sh installs it): %v", err)
	}
	bed := testbed.Start(t, testbed.Needs{Kube: true, Postgres: true, Vault: true, VaultKVMounts: []string{"ss3/kv"},
		KafkaTopics: []string{"platform.events", "platform.events.poison", "webhook.delivered", "webhook.dead_lettered"}, KafkaPartitions: 2})
	kubeconfig, err := bed.Kube.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dumpDeliveries(t, bed.DatabaseURL)
	w := &world{t: t, dir: t.TempDir(), kubeconfig: kubeconfig}
	w.bin = filepath.Join(w.dir, "integration-operator")
	build := exec.Command("go", "build", "-o", w.bin, "./cmd/integration-operator")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	w.env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "DATABASE_URL="+bed.DatabaseURL,
		"VAULT_ADDR="+bed.Vault.Addr(), "VAULT_TOKEN="+bed.Vault.Token(), "KAFKA_BROKERS="+bed.Kafka.Brokers()[0],
		"TOKEN_SIGNING_KEY="+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 32)))
	if out, err := w.run(w.bin, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	return w, bed
}

func TestAsAUserWould(t *testing.T) {
	w, _ := newWorld(t)
	// The three components, as their deployments run them.
	w.start("manager", "manager", "--metrics-bind-address", freeAddr(t), "--health-probe-bind-address", freeAddr(t),
		"--delivery-status-interval", "1s", "--bcrypt-cost", "4", "--dev-logs")
	inboundAddr := freeAddr(t)
	w.start("dispatcher", "dispatcher", "--metrics-bind-address", freeAddr(t), "--inbound-bind-address", inboundAddr, "--allow-networks", "127.0.0.0/8",
		"--retry-schedule", "0s,300ms,300ms", "--poll-interval", "100ms", "--kafka-session-timeout", "6s", "--dev-logs")
	credAPI := freeAddr(t)
	w.start("credentials-api", "credentials-api", "--listen-address", credAPI, "--metrics-bind-address", freeAddr(t), "--dev-logs")

	// A store admin applies a subscription, a credential and two connectors.
	const stripeSecret = "whsec_e2e_endpoint_secret"
	receiverAddr := freeAddr(t)
	manifest := filepath.Join(w.dir, "integrations.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: integrations.ss3.dev/v1
kind: WebhookSubscription
metadata:
  name: erp-orders
  namespace: default
spec:
  storeId: store-1042
  displayName: ERP order feed
  targetURL: http://%s/hooks
  allowInsecureHTTP: true
  events: ["order.*"]
  deliveryTimeout: 5s
---
apiVersion: integrations.ss3.dev/v1
kind: ApiCredential
metadata:
  name: warehouse
  namespace: default
spec:
  storeId: store-1042
  type: ApiKey
  scopes: [orders:read, inventory:read]
  secretName: warehouse-key
---
apiVersion: v1
kind: Secret
metadata:
  name: ebay-creds
  namespace: default
stringData:
  api-key: ebay-client-id
  api-secret: ebay-client-secret
  refresh-token: ebay-refresh-token
---
apiVersion: integrations.ss3.dev/v1
kind: ConnectorConfig
metadata:
  name: ebay-uk
  namespace: default
spec:
  storeId: store-1042
  connectorType: ebay
  displayName: eBay UK
  eventSubscriptions: [product.updated]
  settings: {marketplaceId: EBAY_GB}
  credentialsSecretRef: {name: ebay-creds}
---
apiVersion: v1
kind: Secret
metadata:
  name: stripe-endpoint
  namespace: default
stringData:
  api-secret: %s
---
apiVersion: integrations.ss3.dev/v1
kind: ConnectorConfig
metadata:
  name: stripe
  namespace: default
spec:
  storeId: store-1042
  connectorType: stripe
  displayName: Stripe payments
  credentialsSecretRef: {name: stripe-endpoint}
`, receiverAddr, stripeSecret)), 0o644); err != nil {
		t.Fatal(err)
	}
	w.kubectl("apply", "-f", manifest)
	w.kubectl("wait", "--for=condition=Ready", "webhooksubscription/erp-orders", "apicredential/warehouse",
		"connectorconfig/ebay-uk", "connectorconfig/stripe", "--timeout=60s")

	_, receiverLog := w.startReceiver(receiverAddr, "erp-orders")
	receiverLines := func(substr string) int {
		data, _ := os.ReadFile(receiverLog)
		return strings.Count(string(data), substr)
	}

	// Platform events flow to the receiver, signed.
	if out, err := w.run(w.bin, "produce", "--store", "store-1042", "--type", "order.placed", "--count", "5", "--rate", "0"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	w.eventually(60*time.Second, "five signed deliveries at the receiver", func() error {
		if n := receiverLines("order.placed"); n != 5 || receiverLines("signature=ok") != 5 {
			return fmt.Errorf("%d deliveries, %d verified", n, receiverLines("signature=ok"))
		}
		return nil
	})
	w.eventually(30*time.Second, "kubectl get shows the deliveries", func() error {
		out := w.kubectl("get", "whsub", "erp-orders", "-o", "jsonpath={.status.delivery.delivered}/{.status.conditions[?(@.type==\"Healthy\")].status}")
		if out != "5/True" {
			return fmt.Errorf("delivered/healthy = %q", out)
		}
		return nil
	})
	if out := w.kubectl("get", "whsub", "erp-orders"); !strings.Contains(out, "DELIVERED") || !strings.Contains(out, "HEALTHY") {
		t.Fatalf("kubectl get columns:\n%s", out)
	}

	// Break the receiver: the next delivery is retried, then dead-lettered.
	if out, err := w.run("curl", "-fsS", "-X", "POST", "http://"+receiverAddr+"/control/fail?status=503"); err != nil {
		t.Fatalf("break the receiver: %v %s", err, out)
	}
	if out, err := w.run(w.bin, "produce", "--store", "store-1042", "--type", "order.cancelled", "--count", "1"); err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	w.eventually(60*time.Second, "dead-lettered, shown by kubectl", func() error {
		out := w.kubectl("get", "whsub", "erp-orders", "-o", "jsonpath={.status.delivery.deadLettered}/{.status.conditions[?(@.type==\"Healthy\")].status}")
		if out != "1/False" {
			return fmt.Errorf("deadLettered/healthy = %q", out)
		}
		return nil
	})
	if n := receiverLines("order.cancelled"); n != 3 {
		t.Fatalf("the failing receiver saw %d attempts, want 3 (the schedule's length)", n)
	}
	w.eventually(30*time.Second, "kubectl describe tells what happened", func() error {
		out := w.kubectl("describe", "whsub", "erp-orders")
		for _, want := range []string{"DeliveriesDeadLettered", "DeliveriesFailing", "answered 503"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("describe lacks %q", want)
			}
		}
		return nil
	})

	// Fix the receiver and re-trigger: delivered under the same delivery id.
	if out, err := w.run("curl", "-fsS", "-X", "POST", "http://"+receiverAddr+"/control/ok"); err != nil {
		t.Fatalf("fix the receiver: %v %s", err, out)
	}
	w.kubectl("annotate", "whsub", "erp-orders", "integrations.ss3.dev/retrigger-dead-letters=first-fix")
	w.eventually(60*time.Second, "re-triggered delivery accepted, DEAD back to 0", func() error {
		out := w.kubectl("get", "whsub", "erp-orders", "-o",
			"jsonpath={.status.delivery.delivered}/{.status.delivery.deadLettered}/{.status.conditions[?(@.type==\"Healthy\")].status}")
		if out != "6/0/True" {
			return fmt.Errorf("delivered/deadLettered/healthy = %q", out)
		}
		return nil
	})
	data, _ := os.ReadFile(receiverLog)
	ids := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "order.cancelled") {
			for _, f := range strings.Fields(line) {
				if id, ok := strings.CutPrefix(f, "delivery="); ok {
					ids[id] = true
				}
			}
		}
	}
	if len(ids) != 1 || receiverLines("order.cancelled") != 4 {
		t.Fatalf("the re-triggered delivery should keep its id: %v, %d attempts", ids, receiverLines("order.cancelled"))
	}

	// The gateway validates the issued key with curl.
	key, err := base64.StdEncoding.DecodeString(w.kubectl("get", "secret", "warehouse-key", "-o", "jsonpath={.data.api-key}"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := w.run("curl", "-sS", "-H", "Authorization: Bearer "+string(key), "http://"+credAPI+"/credentials/validate")
	if err != nil || !strings.Contains(out, `"storeId":"store-1042"`) || !strings.Contains(out, `"valid":true`) {
		t.Fatalf("validate the issued key: %v %s", err, out)
	}
	out, _ = w.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-API-Key: ss3_ak_notarealkey", "http://"+credAPI+"/credentials/validate")
	if out != "401" {
		t.Fatalf("a bad key: %s", out)
	}
	// The plain key is nowhere but its Secret: not in the resource.
	if cred := w.kubectl("get", "apicredential", "warehouse", "-o", "yaml"); strings.Contains(cred, string(key[len(key)-20:])) {
		t.Fatal("the plain key shows on the ApiCredential")
	}

	// Stripe posts a payment event to the path the connector's status gives; a replay and a forgery follow.
	url := "http://" + inboundAddr + w.kubectl("get", "connectorconfig", "stripe", "-o", "jsonpath={.status.webhookPath}")
	event := `{"id":"evt_3Pq9","object":"event","type":"charge.succeeded","created":1763900000,"data":{"object":{"id":"ch_1","amount":4200}}}`
	stripe := func(signature string) string {
		out, _ := w.run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
			"-H", "Stripe-Signature: "+signature, "--data-binary", event, url)
		return out
	}
	if code := stripe(inbound.SignStripe([]byte(event), stripeSecret, time.Now())); code != "200" {
		t.Fatalf("a signed Stripe event: %s", code)
	}
	if code := stripe(inbound.SignStripe([]byte(event), stripeSecret, time.Now())); code != "200" {
		t.Fatalf("its replay: %s", code)
	}
	if code := stripe(inbound.SignStripe([]byte(event), "whsec_forger", time.Now())); code != "400" {
		t.Fatalf("a forged Stripe event: %s", code)
	}
	w.eventually(30*time.Second, "kubectl shows the webhooks received", func() error {
		out := w.kubectl("get", "conncfg", "stripe", "-o", "jsonpath={.status.inbound.accepted}/{.status.inbound.duplicates}/{.status.inbound.rejected}")
		if out != "1/1/1" {
			return fmt.Errorf("accepted/duplicates/rejected = %q", out)
		}
		return nil
	})
	w.eventually(30*time.Second, "kubectl describe names the rejection", func() error {
		if out := w.kubectl("describe", "conncfg", "stripe"); !strings.Contains(out, "WebhooksRejected") || !strings.Contains(out, "no v1 signature matches") {
			return fmt.Errorf("describe lacks the rejection:\n%s", out)
		}
		return nil
	})
}

// dumpDeliveries logs the deliveries table when a test fails, to say why.
func dumpDeliveries(t *testing.T, databaseURL string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx := context.Background()
		pool, err := store.Open(ctx, databaseURL)
		if err != nil {
			t.Logf("deliveries: %v", err)
			return
		}
		defer pool.Close()
		rows, err := pool.Query(ctx, `SELECT event_type, status, attempt_number, COALESCE(last_error, '') FROM webhook_deliveries`)
		if err != nil {
			t.Logf("deliveries: %v", err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var typ, status, lastError string
			var attempts int
			_ = rows.Scan(&typ, &status, &attempts, &lastError)
			t.Logf("delivery %s %s attempts=%d %s", typ, status, attempts, lastError)
		}
		var sub string
		_ = pool.QueryRow(ctx, `SELECT row_to_json(w)::text FROM webhook_subscriptions w`).Scan(&sub)
		t.Logf("subscription row %s", sub)
	})
}
