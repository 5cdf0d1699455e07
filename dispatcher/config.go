package dispatcher

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/ss3dev/integration-operator/internal/tracing"
)

// DefaultRetrySchedule is the platform's: attempt 1 immediately, then after
// 1 min, 5 min, 30 min and 2 h; a fifth failure dead-letters.
var DefaultRetrySchedule = []time.Duration{0, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour}

// DefaultTopicPattern matches the platform's event topics: platform.events
// and every platform.events.<domain> beside it (our own output topics,
// such as platform.events.poison, are never consumed whatever matches).
const DefaultTopicPattern = `^platform\.events(\..+)?$`

// DefaultConnectorRetrySchedule spaces a connector's attempts at a
// marketplace: six attempts over about seven hours, then dead-lettered.
var DefaultConnectorRetrySchedule = []time.Duration{0, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour, 6 * time.Hour}

// Config is everything the dispatcher needs to know; zero values get defaults.
type Config struct {
	Kafka      KafkaConfig
	Connectors ConnectorConfig

	// RetrySchedule[i] is the wait before attempt i+1; its length is the
	// number of attempts before a delivery is dead-lettered.
	RetrySchedule []time.Duration
	// Workers deliver concurrently.
	Workers int
	// ClaimLease is how long a claim on a delivery (webhook or connector)
	// lasts unless renewed; a replica renews its claims every third of it,
	// so a dead replica's work is taken over within one lease.
	ClaimLease time.Duration
	// PollInterval is how often due retries (and deliveries a dead replica
	// left claimed) are looked for.
	PollInterval time.Duration
	// OutageRetry is the wait before retrying when our own dependency
	// (Vault, Postgres) failed; such a failure burns no attempt.
	OutageRetry time.Duration
	// MaxResponseBody bytes of each answer are stored.
	MaxResponseBody int
	// AllowedNetworks may be delivered to even though they are loopback,
	// private or link-local (trusted receivers inside the cluster).
	AllowedNetworks []netip.Prefix
	// DestinationRootCAs verify the TLS certificates of queue destinations
	// (STOMP brokers, SQS endpoints): the system's CAs plus a private one
	// (--destination-ca-file); nil is the system's alone. Webhook
	// endpoints are verified against the system's CAs whatever this is.
	DestinationRootCAs *x509.CertPool
	// SecretCacheTTL bounds how long signing secrets are reused from memory.
	SecretCacheTTL time.Duration
	// Replica names this replica in the attempts it records; empty is the
	// hostname (the pod's name).
	Replica string
	// BreakerTrips failed attempts in a row open an endpoint's circuit for
	// BreakerOpen; then one probe is let through.
	BreakerTrips int
	BreakerOpen  time.Duration
	// LimitLease is how long a replica's shares of the endpoints' limits
	// (and a half-open probe) outlive its last sync with Postgres: a dead
	// replica's shares go to the others within it. LimitSync is how often
	// a replica syncs (rebalancing, and seeing breakers others opened).
	LimitLease time.Duration
	LimitSync  time.Duration
	// PausedMaxAge bounds how long a paused subscription's deliveries
	// wait: older ones are dead-lettered with that reason.
	PausedMaxAge time.Duration
	// SecretMissingMaxAge bounds how long deliveries wait for a signing
	// secret missing from Vault (the manager restores one in seconds; one
	// missing this long is gone for good): they are then dead-lettered.
	SecretMissingMaxAge time.Duration
	// DestinationDownMaxAge bounds how long deliveries wait for a queue
	// destination that cannot be reached, or whose credentials are missing
	// from Vault: no attempt is spent meanwhile, then they are dead-lettered.
	DestinationDownMaxAge time.Duration
	// Tracing records spans of the pipeline and carries the trace context
	// on to endpoints; nil or off costs nothing.
	Tracing *tracing.Tracing
	// Ephemeral skips Postgres entirely (nothing persisted, no retries): for
	// benchmarks only, to show what durability costs.
	Ephemeral bool
}

// ConnectorConfig tunes the connector stages, which run beside webhook
// delivery with their own workers, so a slow or failing marketplace holds
// up nothing else.
type ConnectorConfig struct {
	// RetrySchedule[i] is the wait before attempt i+1 at the marketplace.
	RetrySchedule []time.Duration
	// Workers hand batches to adapters concurrently.
	Workers int
	// BatchSize connector deliveries at most are claimed together.
	BatchSize int
	// Timeout bounds one adapter call (a batch, or a poll run).
	Timeout time.Duration
	// ClaimLease is a poll run's claim on its connector; it must outlive
	// Timeout. (Claims on events are Config.ClaimLease, renewed.)
	ClaimLease time.Duration
	// PollCheck is how often due polls, queued connector work and
	// unpublished inbound events are looked for.
	PollCheck time.Duration
	// CredentialTTL bounds how long connector credentials are reused from memory.
	CredentialTTL time.Duration
	// EventsTopic receives the platform events connectors produce
	// (polled orders, provider webhooks).
	EventsTopic string
}

// KafkaConfig holds the settings a real cluster needs.
type KafkaConfig struct {
	Brokers []string
	GroupID string
	// Topics the platform's events arrive on; TopicPattern adds every
	// topic whose name matches, including ones created later (checked every
	// TopicRefresh).
	Topics       []string
	TopicPattern *regexp.Regexp
	TopicRefresh time.Duration
	// PoisonTopic receives messages that cannot be decoded, unchanged.
	PoisonTopic string
	// DeliveredTopic and DeadLetteredTopic receive delivery outcomes.
	DeliveredTopic    string
	DeadLetteredTopic string
	// BatchSize messages at most are persisted together; BatchWait is how
	// long a batch waits to fill after its first message.
	BatchSize int
	BatchWait time.Duration
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to others.
	SessionTimeout time.Duration
	// StallTimeout: when a partition this replica owns has lag but its
	// committed offset has not moved for this long, the replica rejoins the
	// group, so partitions stuck with a stale assignment (seen after a
	// member was killed) are consumed again instead of waiting for someone
	// to restart a worker. Not while the replica's intake is blocked by an
	// outage, which no rejoin cures; partitions nobody owns are rejoined
	// for by one replica only.
	StallTimeout time.Duration
	// clientID names this replica to the brokers, so that it can find its
	// own member (and partitions) in the group.
	clientID string

	TLS *tls.Config
	// SASLMechanism is "", "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	SASLMechanism string
	SASLUsername  string
	SASLPassword  string
}

func (c *Config) defaults() {
	if len(c.RetrySchedule) == 0 {
		c.RetrySchedule = DefaultRetrySchedule
	}
	if c.Workers == 0 {
		c.Workers = 64
	}
	if c.ClaimLease == 0 {
		c.ClaimLease = 15 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.OutageRetry == 0 {
		c.OutageRetry = 10 * time.Second
	}
	if c.MaxResponseBody == 0 {
		c.MaxResponseBody = 4096
	}
	if c.BreakerTrips == 0 {
		c.BreakerTrips = 5
	}
	if c.BreakerOpen == 0 {
		c.BreakerOpen = 30 * time.Second
	}
	if c.LimitLease == 0 {
		c.LimitLease = 3 * time.Second
	}
	if c.LimitSync == 0 {
		c.LimitSync = 250 * time.Millisecond
	}
	if c.PausedMaxAge == 0 {
		c.PausedMaxAge = 72 * time.Hour
	}
	if c.SecretMissingMaxAge == 0 {
		c.SecretMissingMaxAge = 24 * time.Hour
	}
	if c.DestinationDownMaxAge == 0 {
		c.DestinationDownMaxAge = 24 * time.Hour
	}
	if c.SecretCacheTTL == 0 {
		c.SecretCacheTTL = 30 * time.Second
	}
	if c.Replica == "" {
		c.Replica, _ = os.Hostname()
	}
	cc := &c.Connectors
	if len(cc.RetrySchedule) == 0 {
		cc.RetrySchedule = DefaultConnectorRetrySchedule
	}
	if cc.Workers == 0 {
		cc.Workers = 4
	}
	if cc.BatchSize == 0 {
		cc.BatchSize = 50
	}
	if cc.Timeout == 0 {
		cc.Timeout = time.Minute
	}
	if cc.ClaimLease == 0 {
		cc.ClaimLease = cc.Timeout + time.Minute
	}
	if cc.PollCheck == 0 {
		cc.PollCheck = time.Second
	}
	if cc.CredentialTTL == 0 {
		cc.CredentialTTL = time.Minute
	}
	if cc.EventsTopic == "" {
		cc.EventsTopic = "platform.events"
	}
	k := &c.Kafka
	if k.GroupID == "" {
		k.GroupID = "integration-dispatcher"
	}
	if k.PoisonTopic == "" {
		k.PoisonTopic = "platform.events.poison"
	}
	if k.DeliveredTopic == "" {
		k.DeliveredTopic = "webhook.delivered"
	}
	if k.DeadLetteredTopic == "" {
		k.DeadLetteredTopic = "webhook.dead_lettered"
	}
	if k.BatchSize == 0 {
		k.BatchSize = 500
	}
	if k.TopicRefresh == 0 {
		k.TopicRefresh = 30 * time.Second
	}
	if k.StallTimeout == 0 {
		k.StallTimeout = time.Minute
	}
	if k.SessionTimeout == 0 {
		k.SessionTimeout = 30 * time.Second
	}
	if k.BatchWait == 0 {
		k.BatchWait = 5 * time.Millisecond
	}
	if k.clientID == "" {
		k.clientID = replicaClientID()
	}
}

// replicaClientID is the hostname (the pod's name) and a random suffix:
// replicas sharing a process (tests) or a hostname must still differ.
func replicaClientID() string {
	host, _ := os.Hostname()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return "integration-dispatcher-" + host + "-" + hex.EncodeToString(suffix)
}

func (k KafkaConfig) saslMechanism() (sasl.Mechanism, error) {
	switch k.SASLMechanism {
	case "":
		return nil, nil
	case "PLAIN":
		return plain.Mechanism{Username: k.SASLUsername, Password: k.SASLPassword}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, k.SASLUsername, k.SASLPassword)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, k.SASLUsername, k.SASLPassword)
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", k.SASLMechanism)
}

// Dialer connects to the brokers with k's TLS and SASL.
func (k KafkaConfig) Dialer() (*kafka.Dialer, error) {
	mech, err := k.saslMechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{ClientID: k.clientID, Timeout: 10 * time.Second, DualStack: true, TLS: k.TLS, SASLMechanism: mech}, nil
}

func (k KafkaConfig) transport() (*kafka.Transport, error) {
	mech, err := k.saslMechanism()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{TLS: k.TLS, SASL: mech}, nil
}
