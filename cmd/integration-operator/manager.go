package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/settings"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

type managerOptions struct {
	databaseURL     string
	vault           vault.Config
	resync          time.Duration
	concurrency     int
	sweepInterval   time.Duration
	bcryptCost      int
	reportInterval  time.Duration
	statusBudget    float64
	credentialSync  time.Duration
	metricsAddr     string
	probeAddr       string
	leaderElect     bool
	leaderElectNS   string
	developmentLogs bool
}

func newManagerCommand() *cobra.Command {
	var o managerOptions
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the controller manager (one active replica, by leader election)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runManager(cmd, o)
		},
	}
	f := cmd.Flags()
	databaseURLFlag(f, &o.databaseURL, "; default: db.url, db.username, db.password from Vault")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", envDefault("METRICS_BIND_ADDRESS", ":8080"), "address of the Prometheus metrics endpoint; 0 disables it")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", envDefault("HEALTH_PROBE_BIND_ADDRESS", ":8081"), "address of /healthz and /readyz")
	f.BoolVar(&o.leaderElect, "leader-elect", false, "elect one active manager among replicas")
	f.StringVar(&o.leaderElectNS, "leader-election-namespace", envDefault("POD_NAMESPACE", ""), "namespace of the leader election lease (defaults to the pod's)")
	f.BoolVar(&o.developmentLogs, "dev-logs", false, "human-readable logs instead of JSON")
	f.DurationVar(&o.resync, "resync-interval", 10*time.Minute, "re-check every resource this often, repairing drift in Vault and Postgres")
	f.IntVar(&o.concurrency, "max-concurrent-reconciles", 4, "reconciles run in parallel per kind")
	f.DurationVar(&o.sweepInterval, "orphan-sweep-interval", 30*time.Minute, "how often to remove Vault secrets and deactivate rows of resources that no longer exist")
	f.DurationVar(&o.reportInterval, "delivery-status-interval", 10*time.Second, "how often delivery health is copied onto WebhookSubscription status and sync health onto ConnectorConfig status (at most one write per object per interval)")
	f.Float64Var(&o.statusBudget, "status-write-budget", controllers.DefaultStatusWriteBudget, "status writes per second the manager makes to the API server at most, across all resources (burst the same); health changes go first, counters of N busy resources are refreshed within about N/budget + one interval")
	f.IntVar(&o.bcryptCost, "bcrypt-cost", 12, "bcrypt cost of issued credential secrets")
	f.DurationVar(&o.credentialSync, "credential-status-sync-interval", 5*time.Minute, "how often last use of each ApiCredential is synced onto its status")
	addVaultFlags(f, &o.vault)
	return cmd
}

func runManager(cmd *cobra.Command, o managerOptions) error {
	ctrl.SetLogger(zap.New(zap.UseDevMode(o.developmentLogs)))
	log := ctrl.Log.WithName("setup")
	ctx := cmd.Context()
	vaultClient, err := vault.New(ctx, o.vault)
	if err != nil {
		return err
	}
	if o.databaseURL, err = settings.DatabaseURL(ctx, vaultClient, o.databaseURL); err != nil {
		return fmt.Errorf("%w (or set --database-url / DATABASE_URL)", err)
	}

	applied, err := store.Migrate(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	log.Info("database schema up to date", "applied", applied)
	pool, err := store.Open(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := integrationsv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes config: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "integration-operator.integrations.ss3.dev",
		LeaderElectionNamespace: o.leaderElectNS,
		Cache:                   secretCacheOptions(),
		// A Secret read through the client goes to the API server: the
		// reconcilers read the few Secrets they need through the APIReader,
		// and no informer may ever hold the data of every Secret.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	metrics, err := controllers.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	st, recorder := store.New(pool), mgr.GetEventRecorder("integration-operator")
	// The status reporter wakes the reconciler for a secret Vault lost.
	wake := controllers.NewWake(64)
	if err := (&controllers.WebhookSubscriptionReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Store:                   st,
		Vault:                   vaultClient,
		Recorder:                recorder,
		Metrics:                 metrics,
		ResyncInterval:          o.resync,
		MaxConcurrentReconciles: o.concurrency,
		Wake:                    wake,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up webhooksubscription controller: %w", err)
	}
	if err := (&controllers.ConnectorConfigReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Store:                   st,
		Vault:                   vaultClient,
		Recorder:                recorder,
		Metrics:                 metrics,
		ResyncInterval:          o.resync,
		MaxConcurrentReconciles: o.concurrency,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up connectorconfig controller: %w", err)
	}
	if err := (&controllers.ApiCredentialReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Store:                   st,
		Recorder:                recorder,
		Metrics:                 metrics,
		BcryptCost:              o.bcryptCost,
		StatusSyncInterval:      o.credentialSync,
		MaxConcurrentReconciles: o.concurrency,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up apicredential controller: %w", err)
	}
	if err := mgr.Add(&controllers.OrphanSweeper{
		Client: mgr.GetClient(), Store: st, Vault: vaultClient, Metrics: metrics,
		Interval: o.sweepInterval, Log: ctrl.Log.WithName("sweep"),
	}); err != nil {
		return err
	}
	if err := mgr.Add(&controllers.StatusReporter{
		Client: mgr.GetClient(), Store: st, Recorder: recorder,
		Interval: o.reportInterval, Log: ctrl.Log.WithName("status"), Resync: wake,
		WriteBudget: o.statusBudget, Metrics: metrics,
	}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("database", func(req *http.Request) error { return pool.Ping(req.Context()) }); err != nil {
		return err
	}
	log.Info("starting manager")
	return mgr.Start(ctx)
}

// secretCacheOptions narrows what the manager keeps of Secrets. The
// reconcilers watch Secrets metadata-only, owned ones (to repair a changed or
// deleted signing Secret) and referenced ones (signingSecretRef, connector
// credentials, which the user creates without our label, so a label selector
// would hide their changes). Of that metadata the cache keeps only what the
// event handlers use: annotations go, since kubectl apply copies a whole
// Secret, data included, into last-applied-configuration.
func secretCacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Transform: stripSecretMetadata},
	}}
}

// stripSecretMetadata drops a cached Secret's annotations and managed fields
// (and its data, should a full Secret ever be cached).
func stripSecretMetadata(in any) (any, error) {
	if s, ok := in.(*corev1.Secret); ok {
		s.Data, s.StringData = nil, nil
	}
	if m, err := meta.Accessor(in); err == nil {
		m.SetAnnotations(nil)
		m.SetManagedFields(nil)
	}
	return in, nil
}
