package dispatcher

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the dispatcher.
type Metrics struct {
	Events          prometheus.Counter
	Poison          prometheus.Counter
	BatchRetries    prometheus.Counter
	Outcomes        *prometheus.CounterVec
	Latency         prometheus.Histogram
	PublishFailures prometheus.Counter
	CircuitChanges  *prometheus.CounterVec
	OpenCircuits    prometheus.Gauge
	QueueDepth      prometheus.Gauge
	ConsumerLag     prometheus.Gauge
	Rejoins         prometheus.Counter

	ConnectorOutcomes *prometheus.CounterVec
	ConnectorPolls    *prometheus.CounterVec
	InboundWebhooks   *prometheus.CounterVec
	// IntakeBlocked reads intakeBlockedSince (Unix ns; 0 when the
	// replica's batches go through) at each scrape.
	IntakeBlocked      prometheus.GaugeFunc
	intakeBlockedSince atomic.Int64
	RecordIsolations   prometheus.Counter
	// Claims this replica lost (taken over or ended before it got to
	// them) and outcomes fenced off because their claim was lost.
	ClaimsLost    prometheus.Counter
	StaleOutcomes prometheus.Counter
	// AttemptsForgiven: attempts without an answer while this replica was
	// stopped, not counted against the endpoint.
	AttemptsForgiven prometheus.Counter

	// Per replica, over the partitions the group assigned it.
	OwnedPartitions   prometheus.Gauge
	OwnedLag          prometheus.Gauge
	StalledPartitions prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dispatcher_events_total", Help: "Platform events decoded."}),
		Poison: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dispatcher_poison_messages_total", Help: "Messages set aside as poison (undecodable, or refused by Postgres by themselves)."}),
		BatchRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dispatcher_batch_retries_total", Help: "Kafka batches retried because persisting them failed."}),
		Outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatcher_delivery_outcomes_total", Help: "Delivery attempts by resulting status."}, []string{"status"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dispatcher_delivery_duration_seconds", Help: "Time from request to answer of delivery attempts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
		PublishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dispatcher_publish_failures_total", Help: "Outcome messages that could not be published to Kafka."}),
		CircuitChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatcher_circuit_transitions_total", Help: "Endpoint circuit breaker transitions, by new state."}, []string{"state"}),
		OpenCircuits: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dispatcher_open_circuits", Help: "Endpoints this replica has delivered to whose shared circuit breaker (any replica's) is open or half-open; every replica counts the same breakers, so aggregate with max."}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dispatcher_due_deliveries", Help: "Deliveries whose next attempt is due (queue depth), all replicas."}),
		ConsumerLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dispatcher_consumer_lag_messages", Help: "Messages on the event topics not yet committed by the consumer group."}),
		Rejoins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dispatcher_group_rejoins_total", Help: "Times this replica rejoined the consumer group because it had stalled."}),
		ConnectorOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatcher_connector_outcomes_total", Help: "Events handed to connectors, by connector type and resulting status."},
			[]string{"type", "status"}),
		ConnectorPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatcher_connector_polls_total", Help: "Connector poll runs, by connector type and status."}, []string{"type", "status"}),
		InboundWebhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dispatcher_inbound_webhooks_total", Help: "Provider webhooks received, by connector type and result (accepted, duplicate, rejected, error)."},
			[]string{"type", "result"}),
	}
	m.IntakeBlocked = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dispatcher_intake_blocked_seconds",
		Help: "How long this replica's current Kafka batch has failed to persist (0 while batches go through); alert when it grows."},
		func() float64 {
			if since := m.intakeBlockedSince.Load(); since != 0 {
				return time.Since(time.Unix(0, since)).Seconds()
			}
			return 0
		})
	m.RecordIsolations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dispatcher_outcomes_recorded_without_answer_total",
		Help: "Outcomes whose endpoint answer or error Postgres refused, recorded without it so the delivery still ends."})
	m.ClaimsLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dispatcher_claims_lost_total", Help: "Claims this replica lost before attempting them (taken over by another replica, or ended)."})
	m.StaleOutcomes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dispatcher_stale_outcomes_total", Help: "Outcomes not recorded because this replica's claim had been taken over meanwhile."})
	m.AttemptsForgiven = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "dispatcher_attempts_forgiven_total", Help: "Attempts left without an answer while this replica was stopped; retried without counting against the endpoint."})
	m.OwnedPartitions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dispatcher_owned_partitions", Help: "Event topic partitions the consumer group assigned to this replica."})
	m.OwnedLag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dispatcher_owned_consumer_lag_messages", Help: "Messages on this replica's partitions not yet committed (sums across replicas, unlike dispatcher_consumer_lag_messages)."})
	m.StalledPartitions = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "dispatcher_stalled_partitions", Help: "Partitions of this replica with lag whose committed offset has not moved for the stall timeout."})
	// Every status from the start, so the first dead letter is an increase
	// the alerts see rather than a series appearing.
	for _, status := range []string{"DELIVERED", "FAILED", "PENDING", "DEAD_LETTERED"} {
		m.Outcomes.WithLabelValues(status)
	}
	for _, c := range []prometheus.Collector{m.Events, m.Poison, m.BatchRetries, m.Outcomes, m.Latency, m.PublishFailures,
		m.CircuitChanges, m.OpenCircuits, m.QueueDepth, m.ConsumerLag, m.Rejoins, m.ConnectorOutcomes, m.ConnectorPolls, m.InboundWebhooks,
		m.IntakeBlocked, m.RecordIsolations, m.ClaimsLost, m.StaleOutcomes, m.AttemptsForgiven, m.OwnedPartitions, m.OwnedLag, m.StalledPartitions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
