//go:build e2ecluster

// Package cluster runs the Helm chart on a real single-node Kubernetes built
// on this machine (make e2e-cluster): the image in containerd, the pods
// scheduled, probed and networked for real, against Postgres, Vault and a
// Kafka-protocol broker on the host, driven through the cluster's Services.
package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	release   = "io"
	namespace = "integrations"
	shop      = "shop"
)

func TestChartOnARealNode(t *testing.T) {
	n := startNode(t)
	image := n.loadImage()
	deps := startDeps(t, n)
	bin := n.hostBinary()

	// The README's Deploying section, with this machine's addresses.
	tokenKey := make([]byte, 32)
	_, _ = rand.Read(tokenKey)
	n.kubectl("create", "namespace", namespace)
	n.kubectl("-n", namespace, "create", "secret", "generic", "integration-operator-db", "--from-literal=url="+deps.databaseURL)
	n.kubectl("-n", namespace, "create", "secret", "generic", "io-token-signing", "--from-literal=key="+base64.StdEncoding.EncodeToString(tokenKey))
	chartArgs := []string{"-n", namespace,
		"--set", "kafka.brokers=" + deps.kafka,
		"--set", "vault.address=http://" + deps.vault,
		"--set", "credentialsApi.tokenSigningSecret=io-token-signing",
		// The receiver is a pod behind a ClusterIP: a private address the
		// dispatcher refuses unless allowed.
		"--set", "dispatcher.allowNetworks={" + serviceCIDR + "}",
	}
	helm := tool(t, "helm")
	n.helm(helm, append([]string{"install", release, filepath.Join(n.root, "charts", "integration-operator")}, chartArgs...)...)
	n.waitAvailable(namespace, 5*time.Minute)
	n.assertPodsReady(namespace)

	// A store admin binds a namespace to a store and subscribes a receiver.
	n.kubectl("create", "namespace", shop)
	n.kubectl("annotate", "namespace", shop, "integrations.ss3.dev/store-ids=store-1042")
	n.apply(shop, receiverService)
	receiverIP := n.kubectl("-n", shop, "get", "service", "receiver", "-o", "jsonpath={.spec.clusterIP}")
	n.apply(shop, fmt.Sprintf(subscription, receiverIP))
	n.kubectl("-n", shop, "wait", "--for=condition=Ready", "webhooksubscription/erp-orders", "apicredential/warehouse", "--timeout=120s")
	n.apply(shop, fmt.Sprintf(receiverDeployment, image))
	n.waitAvailable(shop, 3*time.Minute)

	produce := func(prefix string, count int, rate string) {
		t.Helper()
		out, err := n.run(bin, "produce", "--kafka-brokers", deps.kafka, "--store", "store-1042", "--type", "order.placed",
			"--count", fmt.Sprint(count), "--rate", rate, "--data", `{"orderId":"`+prefix+`-{n}","total":"19.99"}`)
		if err != nil {
			t.Fatalf("produce: %v\n%s", err, out)
		}
	}
	received := func(prefix string) (ids map[string]bool, bad int) {
		logs, _ := n.run("kubectl", "-n", shop, "logs", "deploy/receiver", "--tail=-1")
		ids = map[string]bool{}
		for _, line := range strings.Split(logs, "\n") {
			if !strings.Contains(line, `"orderId":"`+prefix+`-`) {
				continue
			}
			if !strings.Contains(line, "signature=ok") {
				bad++
			}
			ids[orderID.FindString(line)] = true
		}
		return ids, bad
	}
	waitReceived := func(prefix string, want int, timeout time.Duration) {
		t.Helper()
		n.eventually(timeout, fmt.Sprintf("%d signed deliveries of %s-*", want, prefix), func() error {
			ids, bad := received(prefix)
			if bad > 0 {
				t.Fatalf("%d deliveries failed signature verification", bad)
			}
			if len(ids) != want {
				return fmt.Errorf("%d distinct events received", len(ids))
			}
			return nil
		})
	}

	// Events flow through the Kafka-protocol broker, the dispatcher pods and
	// the receiver's Service, signed with the subscription's secret.
	produce("first", 5, "0")
	waitReceived("first", 5, 2*time.Minute)
	n.eventually(time.Minute, "kubectl get shows the deliveries", func() error {
		out := n.kubectl("-n", shop, "get", "whsub", "erp-orders", "-o", `jsonpath={.status.delivery.delivered}/{.status.conditions[?(@.type=="Healthy")].status}`)
		if out != "5/True" {
			return fmt.Errorf("delivered/healthy = %q", out)
		}
		return nil
	})
	// The delivery log through the chart's APIService and delivery API pods.
	n.kubectl("wait", "--for=condition=Available", "apiservice/v1alpha1.deliveries.integrations.ss3.dev", "--timeout=120s")
	n.eventually(time.Minute, "kubectl get webhookdeliveries lists them", func() error {
		out := n.kubectl("-n", shop, "get", "webhookdeliveries", "--field-selector", "spec.subscription=erp-orders,status.phase=Delivered", "-o", "name")
		if got := len(strings.Fields(out)); got != 5 {
			return fmt.Errorf("%d delivered deliveries listed", got)
		}
		return nil
	})
	describe := n.kubectl("-n", shop, "describe", "whsub", "erp-orders")
	for _, want := range []string{"store-1042", "Delivered:", "Healthy"} {
		if !strings.Contains(describe, want) {
			t.Fatalf("kubectl describe lacks %q:\n%s", want, describe)
		}
	}

	// The gateway validates the issued key through the credentials API's Service.
	credAPI := n.kubectl("-n", namespace, "get", "service", release+"-credentials-api", "-o", "jsonpath={.spec.clusterIP}")
	key, err := base64.StdEncoding.DecodeString(n.kubectl("-n", shop, "get", "secret", "warehouse-key", "-o", "jsonpath={.data.api-key}"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := n.run("curl", "-sS", "--max-time", "10", "-H", "Authorization: Bearer "+string(key), "http://"+credAPI+"/credentials/validate")
	if err != nil || !strings.Contains(out, `"storeId":"store-1042"`) || !strings.Contains(out, `"valid":true`) {
		t.Fatalf("validate the issued key through the Service: %v %s", err, redact(out, string(key)))
	}
	out, _ = n.run("curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-API-Key: ss3_ak_notarealkey", "http://"+credAPI+"/credentials/validate")
	if out != "401" {
		t.Fatalf("a bad key through the Service: %s", out)
	}

	// helm upgrade to a changed value rolls every dispatcher pod while events
	// keep coming; none is lost.
	before := n.kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/component=dispatcher", "-o", "jsonpath={.items[*].metadata.name}")
	done := make(chan struct{})
	go func() {
		defer close(done)
		// 60 events over about 30 s, spanning the rollout.
		if out, err := n.run(bin, "produce", "--kafka-brokers", deps.kafka, "--store", "store-1042", "--type", "order.placed",
			"--count", "60", "--rate", "2", "--data", `{"orderId":"rolling-{n}","total":"1.00"}`); err != nil {
			t.Errorf("produce during the upgrade: %v\n%s", err, out)
		}
	}()
	time.Sleep(3 * time.Second)
	n.helm(helm, append([]string{"upgrade", release, filepath.Join(n.root, "charts", "integration-operator"),
		"--set", "dispatcher.workers=32"}, chartArgs...)...)
	n.kubectl("-n", namespace, "rollout", "status", "deployment/"+release+"-dispatcher", "--timeout=5m")
	<-done
	after := n.kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/component=dispatcher", "-o", "jsonpath={.items[*].metadata.name}")
	for _, p := range strings.Fields(before) {
		if strings.Contains(after, p) {
			t.Fatalf("dispatcher pod %s survived the upgrade: nothing rolled", p)
		}
	}
	if args := n.kubectl("-n", namespace, "get", "deployment", release+"-dispatcher", "-o", "jsonpath={.spec.template.spec.containers[0].args}"); !strings.Contains(args, "--workers=32") {
		t.Fatalf("the upgrade did not reach the Deployment: %s", args)
	}
	waitReceived("rolling", 60, 3*time.Minute)
	n.waitAvailable(namespace, 3*time.Minute)

	// helm uninstall leaves nothing of the release behind.
	n.kubectl("-n", shop, "delete", "deployment,service", "receiver")
	n.kubectl("-n", shop, "delete", "whsub,apicred", "--all", "--wait=true", "--timeout=60s")
	n.helm(helm, "uninstall", release, "-n", namespace, "--wait", "--timeout", "5m")
	n.eventually(2*time.Minute, "no pod left in "+namespace, func() error {
		if out := n.kubectl("-n", namespace, "get", "pods", "-o", "name"); out != "" {
			return fmt.Errorf("left: %s", out)
		}
		return nil
	})
	selector := "app.kubernetes.io/instance=" + release
	if left := n.kubectl("get", "all,configmaps,secrets,serviceaccounts,roles,rolebindings,poddisruptionbudgets,networkpolicies,ingresses,leases",
		"-A", "-l", selector, "-o", "name"); left != "" {
		t.Fatalf("helm uninstall left namespaced objects:\n%s", left)
	}
	if left := n.kubectl("get", "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings",
		"-l", selector, "-o", "name"); left != "" {
		t.Fatalf("helm uninstall left cluster objects:\n%s", left)
	}
	// The manager's Secrets went with their owners (the garbage collector runs here).
	if left := n.kubectl("-n", shop, "get", "secrets", "-o", "name"); left != "" {
		t.Fatalf("Secrets left in %s:\n%s", shop, left)
	}
}

var orderID = regexp.MustCompile(`"orderId":"[a-z]+-[0-9]+"`)

// redact keeps a secret out of a failure message.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

func (n *node) apply(ns, manifest string) {
	n.t.Helper()
	f := filepath.Join(n.dir, fmt.Sprintf("manifest-%d.yaml", time.Now().UnixNano()))
	n.writeFile(f, manifest)
	n.kubectl("-n", ns, "apply", "-f", f)
}

func (n *node) helm(helm string, args ...string) {
	n.t.Helper()
	out, err := n.run(helm, append(args, "--kubeconfig", n.kubeconfig)...)
	if err != nil {
		n.t.Fatalf("helm %s: %v\n%s", args[0], err, out)
	}
}

// waitAvailable waits until every Deployment in ns is Available.
func (n *node) waitAvailable(ns string, timeout time.Duration) {
	n.t.Helper()
	n.kubectl("-n", ns, "wait", "--for=condition=Available", "deployment", "--all", fmt.Sprintf("--timeout=%s", timeout))
}

// assertPodsReady checks every pod in ns runs with its readiness probe
// passing and has not restarted (a liveness probe failing restarts it).
func (n *node) assertPodsReady(ns string) {
	n.t.Helper()
	out := n.kubectl("-n", ns, "get", "pods", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.containerStatuses[0].ready} {.status.containerStatuses[0].restartCount}{"\n"}{end}`)
	lines := strings.Split(out, "\n")
	if len(lines) < 8 { // 2 managers, 3 dispatchers, 3 credentials APIs
		n.t.Fatalf("want 8 pods of the chart's defaults:\n%s", out)
	}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) != 4 || f[1] != "Running" || f[2] != "true" || f[3] != "0" {
			n.t.Fatalf("pod not running ready without restarts (name phase ready restarts): %s\n%s", l, out)
		}
	}
}

const receiverService = `apiVersion: v1
kind: Service
metadata: {name: receiver}
spec:
  selector: {app: receiver}
  ports: [{port: 80, targetPort: 8080}]
`

const subscription = `apiVersion: integrations.ss3.dev/v1
kind: WebhookSubscription
metadata: {name: erp-orders}
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
metadata: {name: warehouse}
spec:
  storeId: store-1042
  type: ApiKey
  scopes: [orders:read, inventory:read]
  secretName: warehouse-key
`

// The partner's receiver, our own image's receive command, verifying with
// the Secret the manager wrote for the subscription.
const receiverDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: receiver}
spec:
  selector: {matchLabels: {app: receiver}}
  template:
    metadata: {labels: {app: receiver}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: receiver
        image: %s
        imagePullPolicy: IfNotPresent
        args: [receive, --listen, ":8080", --secret-file, /signing/secret]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: signing, mountPath: /signing, readOnly: true}]
      volumes:
      - name: signing
        secret: {secretName: erp-orders-signing-secret}
`
