package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ss3dev/integration-operator/internal/credentials"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/stream"
	"github.com/ss3dev/integration-operator/internal/vault"
)

type credentialsAPIOptions struct {
	databaseURL     string
	vault           vault.Config
	listenAddr      string
	metricsAddr     string
	validator       credentials.ValidatorConfig
	requiredScope   credentials.RequiredScopeSource
	tokenTTL        time.Duration
	developmentLogs bool
	stream          streamOptions
}

func newCredentialsAPICommand() *cobra.Command {
	var o credentialsAPIOptions
	cmd := &cobra.Command{
		Use:   "credentials-api",
		Short: "Serve GET /credentials/validate and POST /oauth/token for the API gateway (stateless; run N replicas)",
		Long: `Serve the credentials API. The OAuth token signing key is read from
TOKEN_SIGNING_KEY (base64, at least 32 bytes, the same on every replica);
without it /oauth/token is disabled.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runCredentialsAPI(cmd.Context(), o) },
	}
	f := cmd.Flags()
	databaseURLFlag(f, &o.databaseURL, "")
	f.StringVar(&o.listenAddr, "listen-address", envDefault("LISTEN_ADDRESS", ":8090"), "address of the API and its probes")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", envDefault("METRICS_BIND_ADDRESS", ":8091"), "address of the Prometheus metrics endpoint")
	f.DurationVar(&o.validator.CacheTTL, "cache-ttl", 5*time.Minute, "longest a verified credential is served from memory (changes arrive sooner by notification)")
	f.IntVar(&o.validator.CacheSize, "cache-size", 100_000, "credentials kept in memory")
	f.Float64Var(&o.validator.BcryptsPerMinute, "bcrypts-per-minute", 10, "bcrypt verifications per client id per minute, after the burst (only secrets new to this replica that pass the fingerprint pre-check run one)")
	f.IntVar(&o.validator.BcryptBurst, "bcrypt-burst", 5, "bcrypt verifications per client id at once, before the per-minute rate applies")
	f.IntVar(&o.validator.BcryptConcurrency, "bcrypt-concurrency", 2, "bcrypt verifications running at the same time per client id")
	f.DurationVar(&o.validator.StaleWindow, "stale-window", 30*time.Second, "with the change feed (LISTEN) down, how long credentials known before it keep validating from memory; 0 disables")
	f.DurationVar(&o.validator.FeedPingInterval, "feed-ping-interval", 2*time.Second, "how long the change feed may be quiet before its connection is pinged")
	f.DurationVar(&o.validator.FeedPingTimeout, "feed-ping-timeout", 2*time.Second, "how long the change feed's ping may take before the connection counts as dead")
	// The old names bounded wrong secrets after their bcrypt; kept so existing deployments start.
	f.Float64Var(&o.validator.BcryptsPerMinute, "failures-per-minute", 10, "")
	f.IntVar(&o.validator.BcryptBurst, "failure-burst", 5, "")
	_ = f.MarkDeprecated("failures-per-minute", "use --bcrypts-per-minute")
	_ = f.MarkDeprecated("failure-burst", "use --bcrypt-burst")
	f.StringVar(&o.requiredScope.Header, "required-scope-header", "", "a header the gateway itself sets (e.g. Envoy's headers_to_add) whose value is also required scopes; unset: headers never set the required scope")
	f.BoolVar(&o.requiredScope.IgnoreQuery, "ignore-scope-query", false, "ignore the auth request's scope= query parameters (set behind Envoy ext_authz, which forwards the client's query string)")
	f.DurationVar(&o.validator.UsageFlushInterval, "usage-flush-interval", time.Second, "how often last_used_at is written, in one batch")
	f.DurationVar(&o.tokenTTL, "token-ttl", 15*time.Minute, "lifetime of OAuth access tokens")
	f.BoolVar(&o.developmentLogs, "dev-logs", false, "human-readable logs instead of JSON")
	addStreamFlags(f, &o.stream)
	addVaultFlags(f, &o.vault)
	return cmd
}

// check refuses flag values the validator cannot work with, naming the flag.
func (o *credentialsAPIOptions) check() error {
	v := &o.validator
	switch {
	case v.StaleWindow < 0:
		return fmt.Errorf("--stale-window must be 0 (off) or positive, got %s", v.StaleWindow)
	case v.FeedPingInterval <= 0 || v.FeedPingTimeout <= 0:
		return fmt.Errorf("--feed-ping-interval and --feed-ping-timeout must be positive")
	case v.BcryptsPerMinute <= 0 || v.BcryptBurst < 1 || v.BcryptConcurrency < 1:
		return fmt.Errorf("--bcrypts-per-minute must be positive, --bcrypt-burst and --bcrypt-concurrency at least 1")
	case o.requiredScope.IgnoreQuery && o.requiredScope.Header == "":
		return fmt.Errorf("--ignore-scope-query needs --required-scope-header, or no route could require a scope")
	}
	if v.StaleWindow == 0 {
		v.StaleWindow = -1 // the flag's 0 is off; the config's 0 means the default
	}
	return nil
}

func runCredentialsAPI(ctx context.Context, o credentialsAPIOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(o.developmentLogs)))
	log := ctrl.Log.WithName("credentials-api")
	dbURL, err := databaseURLOrVault(ctx, o.databaseURL, o.vault)
	if err != nil {
		return err
	}
	pool, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()

	reg := newProcessRegistry()
	metrics, err := credentials.NewMetrics(reg)
	if err != nil {
		return err
	}
	validator, err := credentials.NewValidator(store.New(pool), o.validator, metrics, log)
	if err != nil {
		return err
	}
	var tokens *credentials.Tokens
	if raw := os.Getenv("TOKEN_SIGNING_KEY"); raw != "" {
		key, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return fmt.Errorf("TOKEN_SIGNING_KEY is not base64: %w", err)
		}
		if tokens, err = credentials.NewTokens(key, o.tokenTTL); err != nil {
			return err
		}
	} else {
		log.Info("TOKEN_SIGNING_KEY not set: POST /oauth/token is disabled")
	}
	credServer := &credentials.Server{Validator: validator, Tokens: tokens, Metrics: metrics, Log: log, RequiredScope: o.requiredScope}
	handler := credServer.Handler()
	var hub *stream.Hub
	if o.stream.brokers != "" {
		if o.stream.cfg.Metrics, err = stream.NewMetrics(reg); err != nil {
			return err
		}
		hub = stream.New(o.stream.cfg)
		mux := http.NewServeMux()
		mux.Handle("/events/stream", hub.Handler(streamAuth(credServer)))
		mux.Handle("/", handler)
		handler = mux
	}
	api := &http.Server{Addr: o.listenAddr, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10, Handler: handler}
	metricsSrv := &http.Server{Addr: o.metricsAddr, ReadHeaderTimeout: 5 * time.Second,
		Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { validator.Listen(gctx); return nil })
	g.Go(func() error { validator.FlushUsage(gctx); return nil })
	if hub != nil {
		g.Go(func() error { return feedStream(gctx, o.stream, hub, log.WithName("stream")) })
		g.Go(func() error { <-gctx.Done(); hub.Close(); return nil })
	}
	serve(g, gctx, api)
	serve(g, gctx, metricsSrv)
	log.Info("serving", "address", o.listenAddr)
	return g.Wait()
}
