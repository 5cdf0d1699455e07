package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// deliveryAPIBed is the whole stack behind a real kube-apiserver with
// aggregation configured: manager, dispatcher and the delivery API server
// registered by an APIService, and kubectl run as a store admin runs it.
type deliveryAPIBed struct {
	*replicaBed
	kube       *testbed.Kube
	kubeconfig string
	pluginDir  string
}

func startDeliveryAPIBed(t *testing.T) *deliveryAPIBed {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("kubectl not found: run hack/install-system-deps.sh (Debian's kubernetes-client)")
	}
	b := startReplicaBed(t)
	kube := testbed.StartKubeWithAggregation(t)
	kubeconfig, err := kube.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	d := &deliveryAPIBed{replicaBed: b, kube: kube, kubeconfig: kubeconfig, pluginDir: t.TempDir()}
	// The plugin is this binary under kubectl's name for it.
	if err := os.Symlink(b.bin, filepath.Join(d.pluginDir, pluginName)); err != nil {
		t.Fatal(err)
	}
	b.start("dispatcher", "--retry-schedule", "1s,1s,1s")
	b.run("manager", []string{"KUBECONFIG=" + kubeconfig, "DATABASE_URL=" + b.bed.DatabaseURL, "VAULT_ADDR=" + b.bed.Vault.Addr(),
		"VAULT_TOKEN=" + b.bed.Vault.Token()}, "manager", "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--delivery-status-interval", "1s")

	// The delivery API serves a certificate its own CA signed; the
	// APIService carries that CA, so kube-apiserver verifies it.
	ca := testbed.NewCA(t)
	dir := t.TempDir()
	// The aggregator checks the name of the Service: <name>.<namespace>.svc.
	serving := ca.Issue(t, "delivery-api.default.svc", "localhost", "127.0.0.1")
	keyDER, err := x509.MarshalECPrivateKey(serving.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serving.Certificate[0]}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	_, port, _ := net.SplitHostPort(freeAddr(t))
	b.run("delivery-api", []string{"KUBECONFIG=" + kubeconfig, "DATABASE_URL=" + b.bed.DatabaseURL}, "delivery-api",
		"--bind-address", "127.0.0.1", "--secure-port", port, "--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
		"--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig, "--watch-poll-interval", "200ms")

	// Registered as a cluster registers it, but at a Service of type
	// ExternalName (localhost): kube-apiserver proxies to it with no
	// kube-proxy or pods.
	ctx := context.Background()
	apply(t, kube, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "delivery-api", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"}})
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": deliveriesv1alpha1.SchemeGroupVersion.Version + "." + deliveriesv1alpha1.GroupName},
		"spec": map[string]any{"group": deliveriesv1alpha1.GroupName, "version": deliveriesv1alpha1.SchemeGroupVersion.Version,
			"groupPriorityMinimum": int64(1000), "versionPriority": int64(15), "caBundle": ca.PEM,
			"service": map[string]any{"namespace": "default", "name": "delivery-api", "port": mustAtoi(t, port)}},
	}}
	if err := kube.Client.Create(ctx, apiService); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, 2*time.Minute, 500*time.Millisecond, "the APIService is available", func() error {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiregistration.k8s.io", Version: "v1", Kind: "APIService"})
		if err := kube.Client.Get(ctx, clientKey(apiService.GetName()), got); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if m := c.(map[string]any); m["type"] == "Available" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", conds)
	})
	return d
}

// kubectl runs kubectl against the bed as its admin, who may impersonate
// (--as) the users the test binds.
func (d *deliveryAPIBed) kubectl(args ...string) (string, error) {
	// KUBECONFIG, not --kubeconfig: kubectl takes no flags before a plugin's name.
	cmd := exec.Command("kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig, "PATH="+d.pluginDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *deliveryAPIBed) mustKubectl(args ...string) string {
	d.t.Helper()
	out, err := d.kubectl(args...)
	if err != nil {
		d.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// deliveries lists with kubectl -o json and returns the items.
func (d *deliveryAPIBed) deliveries(args ...string) []deliveriesv1alpha1.WebhookDelivery {
	d.t.Helper()
	out := d.mustKubectl(append([]string{"get", "webhookdeliveries", "-o", "json"}, args...)...)
	var list deliveriesv1alpha1.WebhookDeliveryList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		d.t.Fatalf("kubectl get -o json: %v\n%s", err, out)
	}
	return list.Items
}

// endpoint is a partner's receiver: it verifies each signature and answers
// with status(event type, attempt at this delivery).
type endpoint struct {
	mu            sync.Mutex
	received      map[string][]string // delivery id → event types, one per request
	badSignatures int
	receivedAt    map[string]time.Time
}

func startEndpoint(t *testing.T, secret string, status func(eventType string, attempt int) int) (*endpoint, string) {
	e := &endpoint{received: map[string][]string{}, receivedAt: map[string]time.Time{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, eventType := r.Header.Get(signing.HeaderDelivery), r.Header.Get(signing.HeaderEvent)
		e.mu.Lock()
		if !signing.VerifySS3(secret, body, r.Header.Get(signing.HeaderSignature)) {
			e.badSignatures++
		}
		e.received[id] = append(e.received[id], eventType)
		attempt := len(e.received[id])
		e.receivedAt[id] = time.Now()
		e.mu.Unlock()
		w.WriteHeader(status(eventType, attempt))
	}))
	t.Cleanup(srv.Close)
	return e, srv.URL
}

func (e *endpoint) requests(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.received[id]...)
}

// TestStoreAdminsSeeDeliveriesThroughKubectl: a store admin with kubectl
// and RBAC on a namespace lists, filters, describes and watches
// deliveries, sends a test event and re-triggers a dead letter; users
// without access to the namespace's subscriptions are refused.
func TestStoreAdminsSeeDeliveriesThroughKubectl(t *testing.T) {
	d := startDeliveryAPIBed(t)
	ctx := context.Background()
	secret, _ := signing.GenerateSecret()
	for _, ns := range []string{"shop", "other"} {
		apply(t, d.kube, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	apply(t, d.kube, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "partner-secret", Namespace: "shop"},
		StringData: map[string]string{"secret": secret}})
	// orders fails its first two attempts at an order, then heals; tests
	// pass at once. refunds fails until healed.
	orders, ordersURL := startEndpoint(t, secret, func(eventType string, attempt int) int {
		if eventType == "order.placed" && attempt <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var refundsHealed sync.Map
	_, refundsURL := startEndpoint(t, secret, func(string, int) int {
		if _, ok := refundsHealed.Load("yes"); ok {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	for name, url := range map[string]string{"orders": ordersURL, "refunds": refundsURL} {
		apply(t, d.kube, &integrationsv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: integrationsv1.WebhookSubscriptionSpec{StoreID: "store-a", DisplayName: name, TargetURL: url, AllowInsecureHTTP: true,
				Events: []integrationsv1.EventType{"order.*"}, SigningSecretRef: &integrationsv1.SecretKeyReference{Name: "partner-secret", Key: "secret"}}})
	}
	bindDeliveryReaders(t, d)
	testbed.Eventually(t, time.Minute, 300*time.Millisecond, "the manager stores both subscriptions", func() error {
		ids, err := d.st.ActiveSubscriptionIDsUpdatedBefore(ctx, time.Now())
		if err == nil && len(ids) != 2 {
			err = fmt.Errorf("%d active subscriptions", len(ids))
		}
		return err
	})

	// A watch is open before the event: it must see each outcome.
	watch := startWatch(t, d, "-n", "shop", "--field-selector", "spec.subscription=orders")
	d.produce(0, 1)

	// Listed and filtered with kubectl: the order, failing then healed.
	var delivered deliveriesv1alpha1.WebhookDelivery
	testbed.Eventually(t, time.Minute, 500*time.Millisecond, "the order is delivered after two failures", func() error {
		items := d.deliveries("-n", "shop", "--field-selector", "spec.subscription=orders,status.phase=Delivered")
		if len(items) != 1 {
			return fmt.Errorf("%d delivered", len(items))
		}
		delivered = items[0]
		return nil
	})
	if got := orders.requests(delivered.Name); len(got) != 3 {
		t.Fatalf("the endpoint saw %d requests for %s, want 3", len(got), delivered.Name)
	}
	if n := len(d.deliveries("-n", "shop", "--field-selector", "spec.subscription=orders,spec.eventType=order.cancelled")); n != 0 {
		t.Fatalf("event type filter: %d deliveries of order.cancelled", n)
	}
	if n := len(d.deliveries("-n", "shop", "--field-selector", "spec.eventType=order.placed,since=10m")); n != 2 {
		t.Fatalf("event type and time filter over the namespace: %d deliveries, want 2 (orders and refunds)", n)
	}
	if n := len(d.deliveries("-n", "shop", "--field-selector", "until=2000-01-01T00:00:00Z")); n != 0 {
		t.Fatalf("time filter: %d deliveries before 2000", n)
	}
	if n := len(d.deliveries("-n", "shop", "-l", "integrations.ss3.dev/subscription=orders,integrations.ss3.dev/phase=Delivered")); n != 1 {
		t.Fatalf("label selector: %d deliveries, want 1", n)
	}
	table := d.mustKubectl("get", "webhookdeliveries", "-n", "shop", "--field-selector", "spec.subscription=orders")
	if !strings.Contains(table, "SUBSCRIPTION") || !strings.Contains(table, delivered.Name) || !strings.Contains(table, "Delivered") {
		t.Fatalf("kubectl get table:\n%s", table)
	}

	// Described whole: every attempt, the request as sent, signatures redacted.
	var whole deliveriesv1alpha1.WebhookDelivery
	if err := json.Unmarshal([]byte(d.mustKubectl("get", "webhookdelivery", delivered.Name, "-n", "shop", "-o", "json")), &whole); err != nil {
		t.Fatal(err)
	}
	history := whole.Status.AttemptHistory
	if len(history) != 3 || *history[0].HTTPStatus != 503 || *history[1].HTTPStatus != 503 || *history[2].HTTPStatus != 200 {
		t.Fatalf("attempt history %+v", history)
	}
	for _, a := range history {
		if a.Replica == "" || a.StartTime.IsZero() {
			t.Fatalf("attempt without replica or time: %+v", a)
		}
	}
	req := whole.Spec.Request
	if req == nil || req.Headers[signing.HeaderSignature] != signing.Redacted || req.Headers[signing.HeaderDelivery] != delivered.Name ||
		!strings.Contains(req.Body, `"n":0`) {
		t.Fatalf("request as sent: %+v", req)
	}
	describe := d.mustKubectl("describe", "webhookdelivery", delivered.Name, "-n", "shop")
	if strings.Contains(describe, secret) || !strings.Contains(describe, "Attempt History") || strings.Count(describe, "Replica:") != 3 {
		t.Fatalf("kubectl describe:\n%s", describe)
	}

	// The watch saw the outcome within a second of its being recorded.
	seen := watch.waitFor(t, delivered.Name, deliveriesv1alpha1.PhaseDelivered)
	lag := seen.Sub(whole.Status.LastUpdateTime.Time)
	t.Logf("watch: the delivered outcome reached kubectl -w %v after it was recorded", lag)
	if lag > time.Second {
		t.Fatalf("the watch saw the outcome %v after it was recorded, want within 1s", lag)
	}

	// A test event, received and verified by the endpoint.
	out := d.mustKubectl("ss3", "test", "orders", "-n", "shop")
	testID := strings.Fields(strings.TrimPrefix(out, "delivery "))[0]
	testID = strings.TrimSuffix(testID, ":")
	if !strings.Contains(out, "Delivered (HTTP 200)") || len(orders.requests(testID)) != 1 || orders.requests(testID)[0] != "webhook.test" {
		t.Fatalf("kubectl ss3 test: %s; endpoint saw %v", out, orders.requests(testID))
	}
	orders.mu.Lock()
	bad := orders.badSignatures
	orders.mu.Unlock()
	if bad != 0 {
		t.Fatalf("%d requests with a bad signature", bad)
	}

	// A re-trigger by id of the dead letter refunds made.
	var dead deliveriesv1alpha1.WebhookDelivery
	testbed.Eventually(t, time.Minute, 500*time.Millisecond, "refunds dead-letters the order", func() error {
		items := d.deliveries("-n", "shop", "--field-selector", "spec.subscription=refunds,status.phase=DeadLettered")
		if len(items) != 1 {
			return fmt.Errorf("%d dead letters", len(items))
		}
		dead = items[0]
		return nil
	})
	refundsHealed.Store("yes", true)
	if out, err := d.kubectl("ss3", "retrigger", "refunds", "-n", "shop", "--delivery", dead.Name, "--as", "bob"); err == nil {
		t.Fatalf("bob re-triggered in shop: %s", out)
	}
	if out := d.mustKubectl("ss3", "retrigger", "refunds", "-n", "shop", "--delivery", dead.Name, "--as", "alice"); !strings.Contains(out, "re-queued 1") {
		t.Fatalf("kubectl ss3 retrigger: %s", out)
	}
	testbed.Eventually(t, time.Minute, 500*time.Millisecond, "the re-triggered delivery is delivered", func() error {
		items := d.deliveries("-n", "shop", "--field-selector", "metadata.name="+dead.Name)
		if len(items) != 1 || items[0].Status.Phase != deliveriesv1alpha1.PhaseDelivered {
			return fmt.Errorf("%+v", items)
		}
		return nil
	})

	// RBAC: alice (bound in shop) sees; bob (bound in other) is refused;
	// carol may read deliveries but not the subscriptions, so sees none.
	if n := len(d.deliveries("-n", "shop", "--as", "alice")); n < 3 {
		t.Fatalf("alice sees %d deliveries in shop", n)
	}
	if out, err := d.kubectl("get", "webhookdeliveries", "-n", "shop", "--as", "bob"); err == nil || !strings.Contains(out, "forbidden") {
		t.Fatalf("bob listed shop's deliveries: %v\n%s", err, out)
	}
	if out, err := d.kubectl("get", "webhookdelivery", delivered.Name, "-n", "shop", "--as", "bob"); err == nil {
		t.Fatalf("bob read a delivery of shop: %s", out)
	}
	if out, err := d.kubectl("ss3", "test", "orders", "-n", "shop", "--as", "bob"); err == nil {
		t.Fatalf("bob sent a test event in shop: %s", out)
	}
	if n := len(d.deliveries("-n", "shop", "--as", "carol")); n != 0 {
		t.Fatalf("carol, who may not read the subscriptions, sees %d deliveries", n)
	}
	if out, err := d.kubectl("get", "webhookdelivery", delivered.Name, "-n", "shop", "--as", "carol"); err == nil {
		t.Fatalf("carol read a delivery: %s", out)
	}
	if n := len(d.deliveries("-n", "other", "--as", "bob")); n != 0 {
		t.Fatalf("bob sees %d deliveries in other, which has no subscriptions", n)
	}
}

// bindDeliveryReaders binds alice to read deliveries and subscriptions and
// send tests and re-triggers in shop; bob the same in other; carol to read
// deliveries in shop but not its subscriptions.
func bindDeliveryReaders(t *testing.T, d *deliveryAPIBed) {
	full := []rbacv1.PolicyRule{
		{APIGroups: []string{deliveriesv1alpha1.GroupName}, Resources: []string{"webhookdeliveries", "connectordeliveries"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{deliveriesv1alpha1.GroupName}, Resources: []string{"webhooktests", "webhookretriggers"}, Verbs: []string{"create"}},
		{APIGroups: []string{integrationsv1.GroupVersion.Group}, Resources: []string{"webhooksubscriptions", "connectorconfigs"}, Verbs: []string{"get", "list", "watch"}},
	}
	apply(t, d.kube, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "store-admin"}, Rules: full})
	apply(t, d.kube, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "deliveries-only"}, Rules: full[:1]})
	for _, b := range []struct{ user, ns, role string }{{"alice", "shop", "store-admin"}, {"bob", "other", "store-admin"}, {"carol", "shop", "deliveries-only"}} {
		apply(t, d.kube, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: b.user, Namespace: b.ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: b.role},
			Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: b.user}}})
	}
}

// kubectlWatch is a running `kubectl get -w -o json --watch-only`, noting
// when each delivery's phase first reached it.
type kubectlWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time // "name/phase" → when
}

func startWatch(t *testing.T, d *deliveryAPIBed, args ...string) *kubectlWatch {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", d.kubeconfig, "get", "webhookdeliveries", "-w", "--watch-only", "-o", "json"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	w := &kubectlWatch{seen: map[string]time.Time{}}
	go func() {
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var obj deliveriesv1alpha1.WebhookDelivery
			if err := dec.Decode(&obj); err != nil {
				return
			}
			key := obj.Name + "/" + obj.Status.Phase
			w.mu.Lock()
			if _, ok := w.seen[key]; !ok {
				w.seen[key] = time.Now()
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *kubectlWatch) waitFor(t *testing.T, name, phase string) time.Time {
	t.Helper()
	var at time.Time
	testbed.Eventually(t, 30*time.Second, 50*time.Millisecond, "the watch sees "+name+" "+phase, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		var ok bool
		if at, ok = w.seen[name+"/"+phase]; !ok {
			return fmt.Errorf("seen %v", w.seen)
		}
		return nil
	})
	return at
}

func apply(t *testing.T, kube *testbed.Kube, obj client.Object) {
	t.Helper()
	if err := kube.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }
