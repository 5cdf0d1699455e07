package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/go-logr/logr"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/ss3dev/integration-operator/internal/connectors/opener"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/tracing"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// Dispatcher runs the pipeline: consume -> decode -> route -> persist ->
// deliver -> retry -> record -> publish (through the outbox).
type Dispatcher struct {
	cfg     Config
	store   *store.Store
	secrets *secretCache
	router  *Router
	opener  *opener.Opener
	client  *http.Client
	// queues send to SQS and STOMP destinations (deliver_queue.go).
	queues    *queueSenders
	publisher *kafka.Writer
	// transport (TLS, SASL) is shared by the publisher and the admin client.
	transport *kafka.Transport
	metrics   *Metrics
	log       logr.Logger
	// tracing is off (a nil tracer) unless configured.
	tracing *tracing.Tracing

	endpoints *endpoints
	// shared holds the endpoints' limits and breakers across replicas
	// (nil in ephemeral mode: this replica's alone).
	shared *shared
	jobs   chan store.Delivery
	sent   sentNotices
	// held and connectorHeld are the claims this replica holds (nil in
	// ephemeral mode); stopped remembers when the process was not running.
	held          *holds
	connectorHeld *holds
	stopped       *stops

	// rejoin asks the consume loop to leave and rejoin the group (stall).
	rejoin chan struct{}
	// handingOff is when (Unix ns) the consume loop began waiting for a
	// free worker; 0 while it is not waiting.
	handingOff atomic.Int64

	topicsMu      sync.Mutex
	currentTopics []string
	results       chan result
}

// New builds a dispatcher; Run starts it.
func New(cfg Config, st *store.Store, v *vault.Client, metrics *Metrics, log logr.Logger) (*Dispatcher, error) {
	cfg.defaults()
	if len(cfg.Kafka.Brokers) == 0 || (len(cfg.Kafka.Topics) == 0 && cfg.Kafka.TopicPattern == nil) {
		return nil, errors.New("dispatcher: Kafka brokers and topics (or a topic pattern) are required")
	}
	transport, err := cfg.Kafka.transport()
	if err != nil {
		return nil, err
	}
	client := newHTTPClient(cfg.AllowedNetworks, nil)
	queueClient := client
	if cfg.DestinationRootCAs != nil {
		// SQS endpoints trust the extra CAs too; webhook endpoints do not.
		queueClient = newHTTPClient(cfg.AllowedNetworks, cfg.DestinationRootCAs)
	}
	// Marketplace calls have their own timeout; webhook attempts set theirs per request.
	connectorClient := &http.Client{Transport: client.Transport, CheckRedirect: client.CheckRedirect, Timeout: cfg.Connectors.Timeout}
	op := opener.New(v, connectorClient, cfg.Connectors.CredentialTTL)
	d := &Dispatcher{
		cfg: cfg, store: st, transport: transport, secrets: newSecretCache(v, cfg.SecretCacheTTL), router: newRouter(st, op, log.WithName("route")),
		opener: op, client: client, queues: newQueueSenders(v, queueClient, newDialer(cfg.AllowedNetworks), cfg.DestinationRootCAs, cfg.SecretCacheTTL),
		publisher: &kafka.Writer{Addr: kafka.TCP(cfg.Kafka.Brokers...), Transport: transport, Balancer: &kafka.Hash{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond, AllowAutoTopicCreation: true},
		metrics: metrics, log: log, tracing: cfg.Tracing,
		jobs:    make(chan store.Delivery, cfg.Workers*2),
		results: make(chan result, cfg.Workers*2),
		rejoin:  make(chan struct{}, 1),
		stopped: newStops(),
	}
	if !cfg.Ephemeral {
		d.held = newHolds(store.WebhookClaims, cfg.ClaimLease)
		d.connectorHeld = newHolds(store.ConnectorClaims, cfg.ClaimLease)
	}
	if !cfg.Ephemeral {
		d.shared = newShared(cfg.Kafka.clientID, st, cfg.LimitLease, cfg.LimitSync, log.WithName("share"))
	}
	d.endpoints = newEndpoints(cfg.BreakerTrips, cfg.BreakerOpen, d.circuitChanged, d.shared)
	return d, nil
}

// circuitChanged counts a breaker's transition; reportCircuits carries
// the states to the gauge and the status.
func (d *Dispatcher) circuitChanged(_ uuid.UUID, _, state string) {
	d.metrics.CircuitChanges.WithLabelValues(state).Inc()
}

// Run consumes and delivers until ctx ends, then finishes the attempts in
// flight and records them before returning.
func (d *Dispatcher) Run(ctx context.Context) error {
	if err := d.router.Refresh(ctx); err != nil {
		return fmt.Errorf("dispatcher: load subscriptions: %w", err)
	}
	client := &kafka.Client{Addr: kafka.TCP(d.cfg.Kafka.Brokers...), Transport: d.transport, Timeout: 10 * time.Second}

	// Workers, the recorder and the renewal of claims outlive ctx, to
	// finish what is in flight; queued jobs not yet started are released
	// for another replica.
	var workers sync.WaitGroup
	unstarted := &claimed{}
	for range d.cfg.Workers {
		workers.Go(func() { d.work(context.WithoutCancel(ctx), ctx.Done(), unstarted) })
	}
	recorded := make(chan struct{})
	go func() { d.record(context.WithoutCancel(ctx), ctx.Done()); close(recorded) }()
	keepCtx, stopKeeping := context.WithCancel(context.WithoutCancel(ctx))
	defer stopKeeping()
	go d.stopped.watch(keepCtx)
	released := make(chan struct{})
	if !d.cfg.Ephemeral {
		go d.renew(keepCtx, d.held, d.connectorHeld)
		// Shares outlive ctx as claims do, for the attempts finishing.
		go func() { d.shared.run(keepCtx, d.endpoints); close(released) }()
	} else {
		close(released)
	}

	g, gctx := errgroup.WithContext(ctx)
	if !d.cfg.Ephemeral {
		g.Go(func() error { d.schedule(gctx); return nil })
		g.Go(func() error { d.connect(gctx); return nil })
		g.Go(func() error { d.poll(gctx); return nil })
		g.Go(func() error { d.relay(gctx); return nil })
		g.Go(func() error { d.relayNotices(gctx); return nil })
		g.Go(func() error { d.endAbandoned(gctx); return nil })
		g.Go(func() error { d.reportCircuits(gctx, circuitReport); return nil })
	}
	g.Go(func() error { d.observe(gctx, client, 5*time.Second); return nil })
	g.Go(func() error { return d.consumeTopics(gctx, client) })
	err := g.Wait()

	close(d.jobs)
	workers.Wait()
	d.release(d.held, unstarted.held)
	close(d.results)
	<-recorded
	stopKeeping()
	<-released
	d.removeSent(context.WithoutCancel(ctx))
	d.queues.close()
	return errors.Join(err, d.publisher.Close())
}

// consumeTopics runs the consumer on the current topic set, and starts it
// afresh (same group, committed offsets kept) when a topic matching the
// pattern appears or goes.
func (d *Dispatcher) consumeTopics(ctx context.Context, client *kafka.Client) error {
	dialer, err := d.cfg.Kafka.Dialer()
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		topics, err := d.resolveTopics(ctx, client)
		if err != nil {
			d.log.Error(err, "resolving topics failed; retrying")
			if !sleep(ctx, d.cfg.OutageRetry) {
				return nil
			}
			continue
		}
		if len(topics) == 0 {
			d.log.Info("no topic to consume yet; waiting for one matching the pattern")
			if !sleep(ctx, d.cfg.Kafka.TopicRefresh) {
				return nil
			}
			continue
		}
		d.setTopics(topics)
		runCtx, stop := context.WithCancel(ctx)
		go func() {
			// Start afresh when the topic set changes or the group stalls.
			t := time.NewTicker(d.cfg.Kafka.TopicRefresh)
			defer t.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-d.rejoin:
					stop()
					return
				case <-t.C:
					if d.cfg.Kafka.TopicPattern == nil {
						continue
					}
					if now, err := d.resolveTopics(runCtx, client); err == nil && !slices.Equal(now, topics) {
						d.log.Info("topic set changed; rejoining the group", "topics", now)
						stop()
						return
					}
				}
			}
		}()
		reader := kafka.NewReader(kafka.ReaderConfig{
			Brokers: d.cfg.Kafka.Brokers, GroupID: d.cfg.Kafka.GroupID, GroupTopics: topics, Dialer: dialer,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset,
			WatchPartitionChanges: true, SessionTimeout: d.cfg.Kafka.SessionTimeout,
			RebalanceTimeout: d.cfg.Kafka.SessionTimeout, HeartbeatInterval: d.cfg.Kafka.SessionTimeout / 10,
		})
		err = d.consume(runCtx, reader)
		stop()
		if cerr := reader.Close(); cerr != nil && err == nil && ctx.Err() == nil {
			d.log.Error(cerr, "closing the Kafka reader")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) setTopics(topics []string) {
	d.topicsMu.Lock()
	d.currentTopics = topics
	d.topicsMu.Unlock()
}

func (d *Dispatcher) topics() []string {
	d.topicsMu.Lock()
	defer d.topicsMu.Unlock()
	return d.currentTopics
}

// protectedAttempt attempts del if its endpoint admits it now. An attempt
// left without an answer while this replica was stopped is our outage,
// not the endpoint's failure.
func (d *Dispatcher) protectedAttempt(ctx context.Context, del store.Delivery) attemptResult {
	if !del.SubscriptionActive {
		// Paused since this was claimed: wait, unclaimed from now on.
		return attemptResult{err: errors.New("the subscription is paused; the delivery waits for it"), waitFor: time.Minute}
	}
	ep := d.endpoints.get(del)
	done, err := ep.admit(ctx)
	if err != nil {
		var w *errWait
		if errors.As(err, &w) {
			return attemptResult{err: w, waitFor: w.after}
		}
		return attemptResult{err: err, waitFor: d.cfg.OutageRetry}
	}
	started := time.Now()
	r := d.attempt(ctx, del)
	r.started, r.took = started, time.Since(started)
	if r.err != nil && r.status == 0 && !r.outage {
		if gap, stopped := d.stopped.during(started, time.Now()); stopped {
			d.metrics.AttemptsForgiven.Inc()
			r = attemptResult{started: r.started, took: r.took, outage: true, err: fmt.Errorf("this replica was stopped for %v during the attempt (%v); retried, not counted against the endpoint",
				gap.Round(time.Second), r.err)}
		}
	}
	done(r.outage || r.err == nil && r.status < 500 && r.status != 429)
	return r
}

// ephemeralWaits bounds how often an ephemeral worker waits on one
// delivery's endpoint (a breaker half-opens within BreakerOpen).
const ephemeralWaits = 1000

// claimed collects the deliveries workers hand back at shutdown.
type claimed struct {
	mu   sync.Mutex
	held []store.Held
}

func (c *claimed) add(del store.Delivery) {
	c.mu.Lock()
	c.held = append(c.held, del.Held())
	c.mu.Unlock()
}

// heldOf lists the claims of webhook or connector deliveries.
func heldOf[D interface{ Held() store.Held }](ds []D) []store.Held {
	out := make([]store.Held, len(ds))
	for i, d := range ds {
		out[i] = d.Held()
	}
	return out
}

// work delivers jobs until the channel closes; once stopping closes, it
// hands the jobs it has not started to unstarted instead. A job whose
// claim may have lapsed is left to whoever holds it now.
func (d *Dispatcher) work(ctx context.Context, stopping <-chan struct{}, unstarted *claimed) {
	for del := range d.jobs {
		select {
		case <-stopping:
			unstarted.add(del)
			continue
		default:
		}
		if d.held.lapsed(del.ID) {
			d.metrics.ClaimsLost.Inc()
			continue
		}
		attemptCtx, span := d.startAttempt(ctx, del)
		r := d.protectedAttempt(attemptCtx, del)
		// Ephemeral mode keeps no row to reschedule from: a delivery the
		// endpoint's protection holds back waits here instead of being lost.
		for waits := 0; d.cfg.Ephemeral && r.waitFor > 0 && waits < ephemeralWaits; waits++ {
			time.Sleep(min(r.waitFor, time.Second))
			r = d.protectedAttempt(attemptCtx, del)
		}
		outcome, reason := d.judge(del, r)
		d.endAttempt(span, del, r, outcome)
		d.results <- result{delivery: del, outcome: outcome, reason: reason, secretMissing: r.secretMissing, destinationDown: r.destinationDown}
	}
}
