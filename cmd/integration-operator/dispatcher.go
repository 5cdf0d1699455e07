package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ss3dev/integration-operator/dispatcher"
	"github.com/ss3dev/integration-operator/internal/retention"
	"github.com/ss3dev/integration-operator/internal/settings"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/tracing"
	"github.com/ss3dev/integration-operator/internal/vault"
)

type dispatcherOptions struct {
	databaseURL     string
	vault           vault.Config
	cfg             dispatcher.Config
	brokers         string
	topics          string
	topicPattern    string
	allowNetworks   []string
	destinationCA   string
	retrySchedule   []time.Duration
	kafkaSecurity   kafkaSecurity
	metricsAddr     string
	inboundAddr     string
	developmentLogs bool
	tracing         tracing.Settings
	retentions      retention.Retentions
	retention       retention.Config
	dropRate        resource.QuantityValue
}

func newDispatcherCommand() *cobra.Command {
	var o dispatcherOptions
	cmd := &cobra.Command{
		Use:   "dispatcher",
		Short: "Deliver the platform's Kafka events to webhook subscribers (run N replicas in one consumer group)",
		Long: `Run the dispatcher. SASL credentials are read from KAFKA_SASL_USERNAME and
KAFKA_SASL_PASSWORD, never flags.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDispatcher(cmd.Context(), o) },
	}
	f := cmd.Flags()
	databaseURLFlag(f, &o.databaseURL, "")
	f.StringVar(&o.brokers, "kafka-brokers", envDefault("KAFKA_BROKERS", ""), "comma-separated bootstrap brokers [KAFKA_BROKERS]; default: shared/kafka in Vault")
	f.StringVar(&o.topics, "kafka-topics", envDefault("KAFKA_TOPICS", "platform.events"), "comma-separated topics carrying platform events [KAFKA_TOPICS]")
	f.StringVar(&o.topicPattern, "kafka-topic-pattern", envDefault("KAFKA_TOPIC_PATTERN", dispatcher.DefaultTopicPattern),
		"regular expression: also consume every topic whose name matches, including ones created later (never our own output topics); empty: only --kafka-topics [KAFKA_TOPIC_PATTERN]")
	f.StringVar(&o.cfg.Kafka.GroupID, "kafka-group", envDefault("KAFKA_GROUP", "integration-dispatcher"), "consumer group shared by the replicas")
	f.StringVar(&o.cfg.Kafka.PoisonTopic, "poison-topic", "platform.events.poison", "where messages that cannot be delivered are set aside (a copy the topic refuses is kept in Postgres, poison_messages)")
	f.StringVar(&o.cfg.Kafka.DeliveredTopic, "delivered-topic", "webhook.delivered", "where delivery successes are published")
	f.StringVar(&o.cfg.Kafka.DeadLetteredTopic, "dead-lettered-topic", "webhook.dead_lettered", "where dead-lettered deliveries are published")
	f.DurationVar(&o.cfg.Kafka.SessionTimeout, "kafka-session-timeout", 30*time.Second, "how long the group waits for a silent replica before reassigning its partitions")
	f.DurationVar(&o.cfg.Kafka.StallTimeout, "kafka-stall-timeout", time.Minute, "rejoin the group when a partition this replica owns has lag but has committed nothing for this long")
	addKafkaSecurityFlags(f, &o.kafkaSecurity, "", "")
	f.IntVar(&o.cfg.Workers, "workers", 64, "concurrent delivery attempts")
	f.DurationVar(&o.cfg.ClaimLease, "claim-lease", 15*time.Second, "how long a claim on a delivery lasts unless renewed (renewed every third of it); a dead replica's work resumes within it")
	f.DurationVar(&o.cfg.LimitLease, "limit-lease", 3*time.Second, "how long a replica's share of the subscriptions' rate and concurrency limits outlives its last sync; a dead replica's share goes to the others within it")
	f.DurationVar(&o.cfg.LimitSync, "limit-sync", 250*time.Millisecond, "how often a replica syncs its shares of the limits, and the breakers other replicas opened, with Postgres")
	f.DurationVar(&o.cfg.PollInterval, "poll-interval", 500*time.Millisecond, "how often due retries are looked for")
	f.DurationVar(&o.cfg.PausedMaxAge, "paused-delivery-max-age", 72*time.Hour, "how long a paused subscription's deliveries wait before they are dead-lettered")
	f.DurationVar(&o.cfg.SecretMissingMaxAge, "secret-missing-max-age", 24*time.Hour, "how long deliveries wait for a signing secret missing from Vault before they are dead-lettered")
	f.DurationVar(&o.cfg.DestinationDownMaxAge, "destination-unreachable-max-age", 24*time.Hour, "how long deliveries wait for a queue broker that cannot be reached, or destination credentials missing from Vault, before they are dead-lettered (no attempt is spent meanwhile)")
	f.StringVar(&o.destinationCA, "destination-ca-file", envDefault("DESTINATION_CA_FILE", ""),
		"PEM bundle of CAs trusted, besides the system's, for queue destinations' TLS: STOMP brokers (tls: true) and SQS endpoints, e.g. a private CA of an in-cluster broker [DESTINATION_CA_FILE]")
	f.DurationSliceVar(&o.retrySchedule, "retry-schedule", dispatcher.DefaultRetrySchedule, "wait before each attempt; its length is the attempts before dead-lettering")
	f.StringSliceVar(&o.allowNetworks, "allow-networks", nil, "CIDRs that may be delivered to although private or loopback (trusted in-cluster receivers)")
	f.IntVar(&o.cfg.Connectors.Workers, "connector-workers", 4, "connector batches and polls handled concurrently (apart from webhook workers)")
	f.DurationVar(&o.cfg.Connectors.Timeout, "connector-timeout", time.Minute, "bound on one marketplace call (a batch of events, or a poll run)")
	f.DurationSliceVar(&o.cfg.Connectors.RetrySchedule, "connector-retry-schedule", dispatcher.DefaultConnectorRetrySchedule, "wait before each attempt at a marketplace; its length is the attempts before dead-lettering")
	f.DurationVar(&o.cfg.Connectors.PollCheck, "connector-check-interval", time.Second, "how often due connector work, polls and unpublished provider webhooks are looked for")
	f.StringVar(&o.cfg.Connectors.EventsTopic, "connector-events-topic", envDefault("CONNECTOR_EVENTS_TOPIC", "platform.events"), "where events from connectors (polled orders, provider webhooks) are published [CONNECTOR_EVENTS_TOPIC]")
	f.StringVar(&o.inboundAddr, "inbound-bind-address", envDefault("INBOUND_BIND_ADDRESS", ":8090"), "address receiving payment providers' webhooks at /connectors/{configId}/webhook; empty turns it off [INBOUND_BIND_ADDRESS]")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", envDefault("METRICS_BIND_ADDRESS", ":8082"), "address of /metrics, /healthz and /readyz")
	f.BoolVar(&o.developmentLogs, "dev-logs", false, "human-readable logs instead of JSON")
	o.retentions = retention.DefaultRetentions
	o.dropRate = resource.QuantityValue{Quantity: *resource.NewQuantity(retention.DefaultDropRate, resource.BinarySI)}
	f.Var(retention.Period{D: &o.retentions.Deliveries}, "retention-deliveries", "how long webhook deliveries (and their event payloads) are kept: days (30d) or a duration; a day's partition is dropped once past it and its work is done")
	f.Var(retention.Period{D: &o.retentions.ConnectorDeliveries}, "retention-connector-deliveries", "how long connector deliveries are kept")
	f.Var(retention.Period{D: &o.retentions.SyncLog}, "retention-sync-log", "how long connector sync runs are kept")
	f.Var(retention.Period{D: &o.retentions.InboundEvents}, "retention-inbound-events", "how long provider webhooks (the inbound payment audit) are kept")
	f.Var(retention.Period{D: &o.retentions.DeliveryAttempts}, "retention-delivery-attempts", "how long each webhook delivery attempt (time, duration, status, answer excerpt, error, replica) is kept")
	f.Var(retention.Period{D: &o.retentions.ConnectorAttempts}, "retention-connector-attempts", "how long each connector delivery attempt (time, duration, outcome, the marketplace's status and answer excerpt, error, replica) is kept")
	f.IntVar(&o.retention.Ahead, "partitions-ahead", 7, "days after today whose history partitions are created in advance")
	f.DurationVar(&o.retention.Interval, "retention-interval", time.Hour, "how often one replica creates partitions ahead and drops those past retention")
	f.Var(&o.dropRate, "retention-drop-rate", "the most bytes per second a retention drop frees, on average (a quantity: 32Mi): a dropped day's indexes and table go one at a time, each followed by a pause for its size over this rate, so that the disk keeps up with the deliveries' commits")
	addVaultFlags(f, &o.vault)
	addTracingFlags(f, &o.tracing, "integration-operator-dispatcher")
	return cmd
}

func runDispatcher(ctx context.Context, o dispatcherOptions) error {
	ctrl.SetLogger(zap.New(zap.UseDevMode(o.developmentLogs)))
	log := ctrl.Log.WithName("dispatcher")
	// Read before anything is contacted: a bad file stops start-up at once.
	roots, err := destinationRoots(o.destinationCA)
	if err != nil {
		return err
	}
	o.cfg.DestinationRootCAs = roots
	if o.retention.DropRate = o.dropRate.Value(); o.retention.DropRate <= 0 {
		return fmt.Errorf("--retention-drop-rate %s: want a positive number of bytes per second", o.dropRate.String())
	}
	vc, err := vault.New(ctx, o.vault)
	if err != nil {
		return err
	}
	if o.databaseURL, err = settings.DatabaseURL(ctx, vc, o.databaseURL); err != nil {
		return fmt.Errorf("%w (or set --database-url / DATABASE_URL)", err)
	}
	if o.brokers, err = settings.KafkaBrokers(ctx, vc, o.brokers); err != nil {
		return fmt.Errorf("%w (or set --kafka-brokers / KAFKA_BROKERS)", err)
	}
	o.cfg.Kafka.Brokers = splitList(o.brokers)
	o.cfg.Kafka.Topics = splitList(o.topics)
	if o.topicPattern != "" {
		re, err := regexp.Compile(o.topicPattern)
		if err != nil {
			return fmt.Errorf("--kafka-topic-pattern: %w", err)
		}
		o.cfg.Kafka.TopicPattern = re
	}
	o.cfg.RetrySchedule = o.retrySchedule
	for _, cidr := range o.allowNetworks {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("--allow-networks: %w", err)
		}
		o.cfg.AllowedNetworks = append(o.cfg.AllowedNetworks, p)
	}
	if err := o.kafkaSecurity.apply(&o.cfg.Kafka, ""); err != nil {
		return err
	}

	tr, err := startTracing(ctx, o.tracing, vc, log)
	if err != nil {
		return err
	}
	defer func() {
		// Flush what the last seconds recorded, on a clock of its own.
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tr.Shutdown(flushCtx)
	}()
	o.cfg.Tracing = tr

	if _, err := store.Migrate(ctx, o.databaseURL); err != nil {
		return err
	}
	pool, err := store.Open(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := newProcessRegistry()
	metrics, err := dispatcher.NewMetrics(reg)
	if err != nil {
		return err
	}
	d, err := dispatcher.New(o.cfg, store.New(pool), vc, metrics, log)
	if err != nil {
		return err
	}
	retentionMetrics, err := retention.NewMetrics(reg)
	if err != nil {
		return err
	}
	o.retention.Tables = o.retentions.Tables()
	keeper := retention.New(pool, o.retention, retentionMetrics, log.WithName("retention"))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := pool.Ping(r.Context()); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	srv := &http.Server{Addr: o.metricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.Run(gctx) })
	g.Go(func() error { keeper.Run(gctx); return nil })
	serve(g, gctx, srv)
	if o.inboundAddr != "" {
		serve(g, gctx, &http.Server{Addr: o.inboundAddr, Handler: d.InboundHandler(), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
	}
	log.Info("dispatching", "topics", o.cfg.Kafka.Topics, "group", o.cfg.Kafka.GroupID)
	return g.Wait()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
