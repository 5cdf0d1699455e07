package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/store"
)

// The consume loop runs stages 1 to 3 per Kafka batch: decode, route,
// persist; it commits the batch's offsets only once its deliveries are
// durable, then hands the new deliveries to the workers. A crash at any
// point replays the batch, and persisting is idempotent on
// (subscription_id, event_id), so no event is lost or doubled.

func (d *Dispatcher) consume(ctx context.Context, reader *kafka.Reader) error {
	for {
		batch, err := d.fetchBatch(ctx, reader)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume: %w", err)
		}
		if err := d.processBatch(ctx, reader, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Not committed: the batch is retried (idempotently) after a pause.
			d.log.Error(err, "processing a batch failed; retrying it", "messages", len(batch))
			d.metrics.BatchRetries.Inc()
			if !sleep(ctx, d.cfg.OutageRetry/10) {
				return nil
			}
			if err := d.retryBatch(ctx, reader, batch); err != nil {
				return err
			}
		}
	}
}

// retryBatch processes a failed batch again until it succeeds or ctx ends.
func (d *Dispatcher) retryBatch(ctx context.Context, reader *kafka.Reader, batch []kafka.Message) error {
	backoff := d.cfg.OutageRetry / 10
	for {
		err := d.processBatch(ctx, reader, batch)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		d.log.Error(err, "processing a batch failed again; retrying it", "messages", len(batch))
		backoff = min(2*backoff, d.cfg.OutageRetry)
		if !sleep(ctx, backoff) {
			return nil
		}
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

func (d *Dispatcher) processBatch(ctx context.Context, reader *kafka.Reader, batch []kafka.Message) error {
	// Route with the subscriptions as they are now: an event consumed after
	// a subscription's row was written reaches it. Unchanged, this costs one
	// small query per batch.
	err := d.router.Refresh(ctx)
	if err != nil {
		return fmt.Errorf("route: %w", err)
	}
	var poison []kafka.Message
	var deliveries []store.NewDelivery
	var toConnectors []store.NewConnectorDelivery
	jobs := map[uuid.UUID]store.Delivery{}
	for _, m := range batch {
		e, err := Decode(m)
		if err != nil {
			d.metrics.Poison.Inc()
			// The content may be sensitive: log where it was, never what.
			d.log.Info("poison message set aside", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "reason", err.Error())
			poison = append(poison, poisonMessage(d.cfg.Kafka.PoisonTopic, m, err))
			continue
		}
		d.metrics.Events.Inc()
		for _, sub := range d.router.Match(e) {
			nd := store.NewDelivery{ID: uuid.New(), SubscriptionID: sub.ID, EventID: e.ID, StoreID: e.StoreID, EventType: e.Type, Payload: e.Data}
			deliveries = append(deliveries, nd)
			jobs[nd.ID] = store.Delivery{ID: nd.ID, SubscriptionID: sub.ID, EventID: e.ID, StoreID: e.StoreID, EventType: e.Type,
				Payload: e.Data, TargetURL: sub.TargetURL, Timeout: sub.DeliveryTimeout, SignatureScheme: sub.SignatureScheme,
				SubscriptionActive: true, MaxConcurrency: sub.MaxConcurrency, RateLimit: sub.RateLimit, RateBurst: sub.RateBurst}
		}
		for _, c := range d.router.MatchConnectors(e) {
			toConnectors = append(toConnectors, store.NewConnectorDelivery{ID: uuid.New(), ConfigID: c.ID, EventID: e.ID,
				StoreID: e.StoreID, EventType: e.Type, Payload: e.Data})
		}
	}
	if len(poison) > 0 {
		if err = d.publisher.WriteMessages(ctx, poison...); err != nil {
			return fmt.Errorf("set poison aside: %w", err)
		}
	}
	var inserted []uuid.UUID
	if d.cfg.Ephemeral {
		for _, nd := range deliveries {
			inserted = append(inserted, nd.ID)
		}
	} else {
		// Queued for the connector stage, which works apart from webhook
		// delivery. First: a failure here then leaves no webhook delivery
		// claimed but unsent.
		if err = d.store.InsertConnectorDeliveries(ctx, toConnectors); err != nil {
			return err
		}
		if inserted, err = d.store.InsertDeliveries(ctx, deliveries, d.cfg.ClaimLease); err != nil {
			return err
		}
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
	for _, id := range inserted {
		select {
		case d.jobs <- jobs[id]:
		case <-ctx.Done():
			return nil // claimed rows are taken over when the claim lapses
		}
	}
	return nil
}

func poisonMessage(topic string, m kafka.Message, reason error) kafka.Message {
	headers := append([]kafka.Header{}, m.Headers...)
	headers = append(headers,
		kafka.Header{Key: "poison-reason", Value: []byte(reason.Error())},
		kafka.Header{Key: "poison-source", Value: []byte(fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset))})
	return kafka.Message{Topic: topic, Key: m.Key, Value: m.Value, Headers: headers}
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
