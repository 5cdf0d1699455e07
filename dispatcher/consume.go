package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/store"
)

// The consume loop runs stages 1 to 3 per Kafka batch: decode, route,
// persist; it commits the batch's offsets only once its deliveries are
// durable, then hands the new deliveries to the workers. A crash at any
// point replays the batch, and persisting is idempotent on
// (subscription_id, event_id), so no event is lost or doubled. A batch is
// retried only for what retrying can cure (an outage); what one message
// itself causes is set aside with that message alone.

func (d *Dispatcher) consume(ctx context.Context, reader *kafka.Reader) error {
	for {
		batch, err := d.fetchBatch(ctx, reader)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume: %w", err)
		}
		d.processUntilDone(ctx, reader, batch)
	}
}

// processUntilDone processes a batch, retrying it after an outage with
// backoff until it succeeds or ctx ends. While it fails, the stall shows in
// a metric and (as far as Postgres takes it) on the stores' resources.
func (d *Dispatcher) processUntilDone(ctx context.Context, reader *kafka.Reader, batch []kafka.Message) {
	backoff := d.cfg.OutageRetry / 10
	var stalled *intakeStall
	for {
		err := d.processBatch(ctx, reader, batch)
		if err == nil || ctx.Err() != nil {
			if stalled != nil {
				stalled.clear(ctx)
			}
			return
		}
		if stalled == nil {
			stalled = d.newIntakeStall(batch)
		}
		stalled.report(ctx, err)
		d.log.Error(err, "processing a batch failed; retrying it", "messages", len(batch), "stalledFor", time.Since(stalled.since).Round(time.Second))
		d.metrics.BatchRetries.Inc()
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, d.cfg.OutageRetry)
	}
}

// fetchBatch waits for one message, then gathers more for up to BatchWait.
func (d *Dispatcher) fetchBatch(ctx context.Context, reader *kafka.Reader) ([]kafka.Message, error) {
	first, err := reader.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{first}
	fill, cancel := context.WithTimeout(ctx, d.cfg.Kafka.BatchWait)
	defer cancel()
	for len(batch) < d.cfg.Kafka.BatchSize {
		m, err := reader.FetchMessage(fill)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) || fill.Err() != nil {
				break
			}
			return batch, nil
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// routed is one message after decode and route: what it becomes, or why
// it is poison.
type routed struct {
	msg        kafka.Message
	event      Event
	poison     error
	deliveries []store.NewDelivery
	connectors []store.NewConnectorDelivery
	jobs       []store.Delivery
}

func (d *Dispatcher) processBatch(ctx context.Context, reader *kafka.Reader, batch []kafka.Message) error {
	// Route with the subscriptions as they are now: an event consumed after
	// a subscription's row was written reaches it. Unchanged, this costs one
	// small query per batch.
	if err := d.router.Refresh(ctx); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	msgs := make([]routed, len(batch))
	for i, m := range batch {
		msgs[i] = d.decodeAndRoute(m)
	}
	spans := d.traceConsumed(ctx, msgs)
	spans.persisting(msgs)
	claim, sent := store.NewClaim(d.cfg.ClaimLease), time.Now()
	persistCtx, cancelPersist := d.claiming(ctx)
	inserted, err := d.persist(persistCtx, msgs, claim)
	cancelPersist()
	spans.persisted(err)
	if err != nil {
		// The write may have committed before it failed: what it may have
		// claimed is given up (fenced by the token) rather than left to lapse.
		d.release(d.held, heldOf(jobsClaimed(msgs, claim, nil)))
		spans.end(err)
		return err
	}
	hand := jobsClaimed(msgs, claim, inserted)
	if err := d.setAside(ctx, msgs); err != nil {
		d.release(d.held, heldOf(hand)) // the batch is retried; its rows are due now
		spans.end(err)
		return err
	}
	// Bounded: a commit caught in a rebalance must not hold up the loop; the
	// batch is durable, and replaying it inserts nothing.
	commitCtx, cancelCommit := context.WithTimeout(ctx, 10*time.Second)
	err = reader.CommitMessages(commitCtx, batch...)
	cancelCommit()
	if err != nil {
		// The deliveries are durable and claimed by us; deliver them anyway.
		// The replayed batch will find them and insert nothing.
		d.log.Error(err, "committing offsets failed; the batch will be replayed harmlessly")
	}
	spans.end(nil)
	// Held (renewed) only once handed over: rows this attempt inserted but
	// does not hand over (a retried batch) lapse and are claimed as due.
	d.held.add(sent, heldOf(hand)...)
	// While every worker is busy the loop waits here and commits nothing:
	// backpressure, which a rejoin cannot cure (observe reads handingOff).
	defer d.handingOff.Store(0)
	for i, job := range hand {
		select {
		case d.jobs <- job:
			continue
		default:
		}
		d.handingOff.CompareAndSwap(0, time.Now().UnixNano())
		select {
		case d.jobs <- job:
		case <-ctx.Done():
			d.release(d.held, heldOf(hand[i:])) // for another replica, now
			return nil
		}
	}
	return nil
}

// jobsClaimed is the webhook deliveries of msgs under claim: those whose
// rows were inserted, or, with inserted nil, every one that may have been.
func jobsClaimed(msgs []routed, claim store.Claim, inserted map[uuid.UUID]bool) []store.Delivery {
	var jobs []store.Delivery
	for _, m := range msgs {
		for _, job := range m.jobs {
			if inserted == nil || inserted[job.ID] {
				job.ClaimToken = claim.Token
				jobs = append(jobs, job)
			}
		}
	}
	return jobs
}

// decodeAndRoute is stages 1 and 2 for one message.
func (d *Dispatcher) decodeAndRoute(m kafka.Message) routed {
	r := routed{msg: m}
	e, err := Decode(m)
	if err != nil {
		r.poison = err
		return r
	}
	r.event = e
	d.metrics.Events.Inc()
	// The partition key: the event's time, else its message's, so that a
	// replay of the message or a re-send of the event finds its rows.
	at := e.Time
	if at.IsZero() {
		at = m.Time
	}
	at = store.PartitionTime(at)
	for _, sub := range d.router.Match(e) {
		nd := store.NewDelivery{ID: store.NewID(), SubscriptionID: sub.ID, EventID: e.ID, StoreID: e.StoreID, EventType: e.Type, Payload: e.Data,
			EventTime: at}
		r.deliveries = append(r.deliveries, nd)
		r.jobs = append(r.jobs, store.Delivery{ID: nd.ID, EventTime: at, SubscriptionID: sub.ID, EventID: e.ID, StoreID: e.StoreID, EventType: e.Type,
			Payload: e.Data, TargetURL: sub.TargetURL, Timeout: sub.DeliveryTimeout, SignatureScheme: sub.SignatureScheme,
			SubscriptionActive: true, MaxConcurrency: sub.MaxConcurrency, RateLimit: sub.RateLimit, RateBurst: sub.RateBurst,
			Destination: sub.Destination})
	}
	for _, c := range d.router.MatchConnectors(e) {
		r.connectors = append(r.connectors, store.NewConnectorDelivery{ID: store.NewID(), ConfigID: c.ID, EventID: e.ID,
			StoreID: e.StoreID, EventType: e.Type, Payload: e.Data, EntityKey: connectors.EntityKey(e.Type, e.Data), EventTime: at})
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
