// Command dev brings up the whole integration layer on one machine with no
// Docker: a control plane (kube-apiserver + etcd), PostgreSQL, Vault in dev
// mode and a Kafka-protocol broker, then the manager, dispatcher and
// credentials API, a sample receiver and a few sample events. It prints
// what to try and tears everything down on Ctrl-C. `make dev` runs it.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "make dev:", err)
		os.Exit(1)
	}
}

type stack struct {
	dir     string
	bin     string
	env     []string
	procs   []*exec.Cmd
	closers []func()
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	s := &stack{}
	defer s.teardown()
	var err error
	if s.dir, err = os.MkdirTemp("", "integration-operator-dev-"); err != nil {
		return err
	}
	s.closers = append(s.closers, func() { os.RemoveAll(s.dir) })
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}

	step("building the binary")
	s.bin = filepath.Join(s.dir, "integration-operator")
	build := exec.Command("go", "build", "-o", s.bin, "./cmd/integration-operator")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}

	step("starting kube-apiserver + etcd, PostgreSQL, Vault (dev) and a Kafka-protocol broker")
	kube, err := testbed.StartKube()
	if err != nil {
		return err
	}
	s.closers = append(s.closers, kube.Close)
	kubeconfig, err := kube.Kubeconfig()
	if err != nil {
		return err
	}
	pg, err := testbed.StartPostgres(ctx)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, pg.Close)
	dbURL, err := pg.CreateDatabase(ctx)
	if err != nil {
		return err
	}
	vault, err := testbed.StartVault(ctx)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, vault.Close)
	if err := vault.EnableKV2(ctx, "ss3/kv"); err != nil {
		return err
	}
	kafka, err := testbed.StartKafka(3, "platform.events", "platform.events.poison", "webhook.delivered", "webhook.dead_lettered")
	if err != nil {
		return err
	}
	s.closers = append(s.closers, kafka.Close)

	s.env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "DATABASE_URL="+dbURL, "VAULT_ADDR="+vault.Addr(),
		"VAULT_TOKEN="+vault.Token(), "KAFKA_BROKERS="+kafka.Brokers()[0],
		"TOKEN_SIGNING_KEY="+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("dev-signing-key!"), 2)))
	if out, err := s.output(s.bin, "migrate"); err != nil {
		return fmt.Errorf("migrate: %w: %s", err, out)
	}

	step("starting the manager, the dispatcher and the credentials API")
	credAPI, inbound := freeAddr(), freeAddr()
	s.start("manager", "manager", "--metrics-bind-address", freeAddr(), "--health-probe-bind-address", freeAddr(),
		"--delivery-status-interval", "2s", "--dev-logs")
	s.start("dispatcher", "dispatcher", "--metrics-bind-address", freeAddr(), "--inbound-bind-address", inbound, "--allow-networks", "127.0.0.0/8",
		"--retry-schedule", "0s,5s,10s,20s,30s", "--poll-interval", "200ms", "--kafka-session-timeout", "6s", "--dev-logs")
	s.start("credentials-api", "credentials-api", "--listen-address", credAPI, "--metrics-bind-address", freeAddr(), "--dev-logs")

	step("installing the store-tenancy policy; binding namespace default to store-1042")
	if out, err := s.output("kubectl", "apply", "-k", filepath.Join(root, "config", "admission")); err != nil {
		return fmt.Errorf("kubectl apply -k config/admission: %w: %s", err, out)
	}
	if out, err := s.output("kubectl", "annotate", "namespace", "default", "--overwrite", "integrations.ss3.dev/store-ids=store-1042"); err != nil {
		return fmt.Errorf("kubectl annotate namespace: %w: %s", err, out)
	}

	step("applying the samples: a subscription for the sample receiver, the ApiCredential, and an Amazon ConnectorConfig pointed at a local stand-in")
	amazon, err := startAmazonStandIn()
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func() { amazon.Close() })
	receiver := freeAddr()
	manifest := filepath.Join(s.dir, "dev.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(devManifest, receiver, amazon.Addr(), amazon.Addr())), 0o644); err != nil {
		return err
	}
	samples := filepath.Join(root, "config", "samples")
	if out, err := s.output("kubectl", "apply", "-f", manifest, "-f", filepath.Join(samples, "integrations_v1_apicredential.yaml")); err != nil {
		return fmt.Errorf("kubectl apply: %w: %s", err, out)
	}
	if out, err := s.output("kubectl", "wait", "--for=condition=Ready", "whsub/demo-orders", "apicred/warehouse-sync",
		"conncfg/amazon-eu", "--timeout=120s"); err != nil {
		return fmt.Errorf("waiting for Ready: %w: %s", err, out)
	}

	step("starting the sample receiver with the subscription's signing secret")
	secret, err := s.output("kubectl", "get", "secret", "demo-orders-signing-secret", "-o", "jsonpath={.data.secret}")
	if err != nil {
		return err
	}
	plain, err := base64.StdEncoding.DecodeString(secret)
	if err != nil {
		return err
	}
	secretFile := filepath.Join(s.dir, "webhook-secret")
	if err := os.WriteFile(secretFile, plain, 0o600); err != nil {
		return err
	}
	receiverLog := s.start("receiver", "receive", "--listen", receiver, "--secret-file", secretFile)

	step("producing three sample events")
	if out, err := s.output(s.bin, "produce", "--store", "store-1042", "--type", "order.placed", "--count", "3"); err != nil {
		return fmt.Errorf("produce: %w: %s", err, out)
	}

	fmt.Printf(`
integration-operator is running locally (ready in %s). In another shell:

  export KUBECONFIG=%s
  kubectl get webhooksubscriptions,apicredentials,connectorconfigs
  kubectl describe webhooksubscription demo-orders
  tail -f %s                      # what the sample receiver got
  %s produce --kafka-brokers %s --store store-1042 --type order.shipped --count 5
  curl -s -X POST http://%s/control/fail?status=503   # break the receiver; watch Healthy and Dead
  curl -s -X POST http://%s/control/ok                # heal it, then re-trigger:
  kubectl annotate whsub demo-orders integrations.ss3.dev/retrigger-dead-letters=$(date +%%s) --overwrite
  KEY=$(kubectl get secret warehouse-api-key -o jsonpath='{.data.api-key}' | base64 -d)
  curl -s -H "Authorization: Bearer $KEY" http://%s/credentials/validate
  kubectl describe conncfg amazon-eu    # demo credentials sent only to a local stand-in that refuses them: lastSync shows the poll failing and backing off
  kubectl create ns other && kubectl -n other apply -f config/samples/integrations_v1_apicredential.yaml   # refused: store-1042 is not bound to "other"
  # payment providers' webhooks: http://%s<status.webhookPath of a stripe or payfast ConnectorConfig>

Logs are in %s. Ctrl-C tears everything down.
`, time.Since(started).Round(time.Second), kubeconfig, receiverLog, s.bin, kafka.Brokers()[0], receiver, receiver, credAPI, inbound, s.dir)

	<-ctx.Done()
	step("tearing down")
	return nil
}

const devManifest = `apiVersion: v1
kind: Secret
metadata:
  name: amazon-sp-api
  namespace: default
stringData:
  api-key: demo-lwa-client-id
  api-secret: demo-lwa-client-secret
  refresh-token: demo-lwa-refresh-token
---
# config/samples' Amazon connector, but talking to a stand-in on this
# machine: demo credentials must never reach the real Amazon.
apiVersion: integrations.ss3.dev/v1
kind: ConnectorConfig
metadata:
  name: amazon-eu
  namespace: default
spec:
  storeId: store-1042
  connectorType: amazon
  displayName: Amazon EU marketplace (local stand-in)
  eventSubscriptions: [product.updated, inventory.updated, order.fulfilled]
  settings:
    sellerId: A2SELLER0EXAMPLE
    marketplaceId: A1PA6795UKMFR9
    endpoint: http://%s
    lwaEndpoint: http://%s
  credentialsSecretRef:
    name: amazon-sp-api
  pollInterval: 1m
---
apiVersion: integrations.ss3.dev/v1
kind: WebhookSubscription
metadata:
  name: demo-orders
  namespace: default
spec:
  storeId: store-1042
  displayName: Demo order feed (local sample receiver)
  targetURL: http://%s/hooks
  allowInsecureHTTP: true
  events: ["order.*"]
`

func step(msg string) { fmt.Fprintf(os.Stderr, "==> %s\n", msg) }

func (s *stack) output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// start runs the binary in the background with its output in a log file.
func (s *stack) start(logName string, args ...string) string {
	logPath := filepath.Join(s.dir, logName+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return logPath
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return logPath
	}
	s.procs = append(s.procs, cmd)
	return logPath
}

func (s *stack) teardown() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = p.Process.Kill()
		}
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// amazonStandIn answers every call as Amazon answers unknown client
// credentials, so make dev shows a connector failing and backing off with
// the demo credentials never leaving the machine.
type amazonStandIn struct {
	srv *http.Server
	ln  net.Listener
}

func startAmazonStandIn() (*amazonStandIn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"make dev: demo credentials, refused by the local stand-in for Amazon"}`)
	})}
	go func() { _ = srv.Serve(ln) }()
	return &amazonStandIn{srv: srv, ln: ln}, nil
}

func (a *amazonStandIn) Addr() string { return a.ln.Addr().String() }
func (a *amazonStandIn) Close()       { _ = a.srv.Close() }

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return strings.TrimSpace(l.Addr().String())
}
