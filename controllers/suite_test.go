package controllers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
	"github.com/ss3dev/integration-operator/internal/vault"
)

const kvMount = "ss3/kv"

// The package shares one control plane, Postgres and Vault; each test runs
// its own manager in its own namespace.
var (
	kube        *testbed.Kube
	pg          *testbed.Postgres
	databaseURL string
	vaultServer *testbed.Vault
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx := context.Background()
	var err error
	if kube, err = testbed.StartKube(); err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	defer kube.Close()
	if err = installTenancyPolicy(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	if pg, err = testbed.StartPostgres(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	defer pg.Close()
	if databaseURL, err = pg.CreateDatabase(ctx); err == nil {
		_, err = store.Migrate(ctx, databaseURL)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	if vaultServer, err = testbed.StartVault(ctx); err == nil {
		err = vaultServer.EnableKV2(ctx, kvMount)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbed:", err)
		return 1
	}
	defer vaultServer.Close()
	return m.Run()
}

// harness is a running manager with the reconcilers, and handles on what
// they write to.
type harness struct {
	client     client.Client
	store      *store.Store
	vault      *vault.Client
	metrics    *controllers.Metrics
	namespace  string
	kubeWrites *atomic.Int64
	logs       syncBuffer
	recorder   events.EventRecorder
	// wake is the subscription reconciler's wake-up channel, for a
	// StatusReporter's Resync.
	wake *controllers.Wake
}

// syncBuffer collects the manager's logs, to check no secret is in them.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harnessOptions struct {
	resync time.Duration
}

func startManager(t *testing.T, opts harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := store.Open(ctx, databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := vault.New(ctx, vault.Config{Address: vaultServer.Addr(), Token: vaultServer.Token(), Mount: kvMount})
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := controllers.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{client: kube.Client, store: store.New(pool), vault: vc, metrics: metrics, kubeWrites: &atomic.Int64{}}
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:     kube.Scheme,
		Logger:     zap.New(zap.WriteTo(&h.logs)),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		NewClient: func(cfg *rest.Config, o client.Options) (client.Client, error) {
			c, err := client.New(cfg, o)
			return countingClient{Client: c, writes: h.kubeWrites}, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.recorder = mgr.GetEventRecorder("integration-operator")
	h.wake = controllers.NewWake(64)
	if err := (&controllers.WebhookSubscriptionReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Store:                   h.store,
		Vault:                   vc,
		Recorder:                mgr.GetEventRecorder("integration-operator"),
		Metrics:                 metrics,
		ResyncInterval:          opts.resync,
		MaxConcurrentReconciles: 8,
		Wake:                    h.wake,
	}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.ConnectorConfigReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Store:                   h.store,
		Vault:                   vc,
		Recorder:                h.recorder,
		Metrics:                 metrics,
		ResyncInterval:          opts.resync,
		MaxConcurrentReconciles: 4,
	}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := (&controllers.ApiCredentialReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Store:                   h.store,
		Recorder:                mgr.GetEventRecorder("integration-operator"),
		Metrics:                 metrics,
		BcryptCost:              bcrypt.MinCost,
		StatusSyncInterval:      opts.resync,
		MaxConcurrentReconciles: 8,
	}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		pool.Close()
	})

	h.namespace = fmt.Sprintf("t-%d", time.Now().UnixNano())
	if err := kube.Client.Create(ctx, boundNamespace(h.namespace, testStores...)); err != nil {
		t.Fatal(err)
	}
	return h
}

// testStores are the storeIds the package's tests use; startManager binds
// its namespace to them, as a platform team would.
var testStores = []string{"store-1042", "store-2077",
	"store-0", "store-1", "store-2", "store-3", "store-4", "store-5", "store-6", "store-7", "store-8", "store-9"}

// boundNamespace is a Namespace bound to storeIDs (none: unbound).
func boundNamespace(name string, storeIDs ...string) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if len(storeIDs) > 0 {
		ns.Annotations = map[string]string{integrationsv1.StoreIDsAnnotation: strings.Join(storeIDs, ",")}
	}
	return ns
}

// installTenancyPolicy creates the shipped store-tenancy policy and binding
// from config/admission, as TestMain's CRDs come from config/crd, and waits
// until the API server enforces them (it loads policies asynchronously).
func installTenancyPolicy(ctx context.Context) error {
	root, err := testbed.RepoRoot()
	if err != nil {
		return err
	}
	for _, file := range []string{"policy.yaml", "binding.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, "config", "admission", file))
		if err != nil {
			return err
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if err := kube.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("create %s: %w", file, err)
		}
	}
	const probe = "tenancy-probe"
	if err := kube.Client.Create(ctx, boundNamespace(probe)); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := kube.Client.Create(ctx, newSubscription(probe, "probe"), client.DryRunAll)
		if err != nil && strings.Contains(err.Error(), "is not bound to namespace") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the tenancy policy is not enforced after 30s (last answer: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventually polls cond, as the test bed does, every 100 ms.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testbed.Eventually(t, timeout, 100*time.Millisecond, what, cond)
}

// countingClient counts the manager's writes to the API server.
type countingClient struct {
	client.Client
	writes *atomic.Int64
}

func (c countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.writes.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

func (c countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.writes.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

func (c countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.writes.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.writes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

func (c countingClient) Status() client.SubResourceWriter {
	return countingStatus{SubResourceWriter: c.Client.Status(), writes: c.writes}
}

type countingStatus struct {
	client.SubResourceWriter
	writes *atomic.Int64
}

func (s countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// reconcileCount reads controller-runtime's own count of finished
// WebhookSubscription reconciles, summed over results.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "webhooksubscription" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// update re-reads obj and applies mutate until the write does not conflict
// with the manager's own writes (finalizer, status).
func update(t *testing.T, obj client.Object, mutate func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := kube.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return kube.Client.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits for an Event with reason about the object named regarding
// whose note contains noteContains.
func (h *harness) waitEvent(t *testing.T, regarding, reason, noteContains string) {
	t.Helper()
	eventually(t, 10*time.Second, "a "+reason+" Event about "+regarding, func() error {
		var evs eventsv1.EventList
		if err := h.client.List(context.Background(), &evs, client.InNamespace(h.namespace)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == reason && e.Regarding.Name == regarding && strings.Contains(e.Note, noteContains) {
				return nil
			}
		}
		return errors.New("none yet")
	})
}
