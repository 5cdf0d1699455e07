package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 7, publish: webhook.delivered and webhook.dead_lettered, as the
// platform specifies them (plus an outcomeId, the same for every copy of
// one outcome), keyed by subscription so each subscription's outcomes stay
// in order; and the platform events connectors bring in. Notices go
// through an outbox: written with their outcome, sent right after the
// commit, and relayed until Kafka takes them.

type deliveredMessage struct {
	OutcomeID      string `json:"outcomeId"`
	DeliveryID     string `json:"deliveryId"`
	SubscriptionID string `json:"subscriptionId"`
	StoreID        string `json:"storeId"`
	EventType      string `json:"eventType"`
}

type deadLetteredMessage struct {
	OutcomeID      string `json:"outcomeId"`
	DeliveryID     string `json:"deliveryId"`
	SubscriptionID string `json:"subscriptionId"`
	StoreID        string `json:"storeId"`
	Reason         string `json:"reason"`
}

// outcomeNamespace makes an outcome's id from the delivery, the attempt
// that ended it and its status.
var outcomeNamespace = uuid.MustParse("b7e2f4a1-3c5d-4e6f-8a9b-0c1d2e3f4a5b")

// notice is the outbox message for r's outcome, or nil when it has none.
func (d *Dispatcher) notice(r result) *store.Notice {
	id := uuid.NewSHA1(outcomeNamespace, fmt.Appendf(nil, "%s/%d/%s", r.delivery.ID, r.outcome.Attempts, r.outcome.Status))
	var topic string
	var payload any
	switch r.outcome.Status {
	case store.DeliveryDelivered:
		topic = d.cfg.Kafka.DeliveredTopic
		payload = deliveredMessage{OutcomeID: id.String(), DeliveryID: r.delivery.ID.String(), SubscriptionID: r.delivery.SubscriptionID.String(),
			StoreID: r.delivery.StoreID, EventType: r.delivery.EventType}
	case store.DeliveryDeadLettered:
		topic = d.cfg.Kafka.DeadLetteredTopic
		payload = deadLetteredMessage{OutcomeID: id.String(), DeliveryID: r.delivery.ID.String(), SubscriptionID: r.delivery.SubscriptionID.String(),
			StoreID: r.delivery.StoreID, Reason: r.reason}
	default:
		return nil
	}
	value, _ := json.Marshal(payload) // strings only: cannot fail
	return &store.Notice{ID: id, Topic: topic, Key: []byte(r.delivery.SubscriptionID.String()), Value: value}
}

// sentNotices are notices Kafka has taken whose outbox rows are still to
// be removed: the next outcome batch removes them in its own transaction
// (or the relay does, when no batch comes), well within their claim.
type sentNotices struct {
	mu  sync.Mutex
	ids []uuid.UUID
}

func (s *sentNotices) add(ids ...uuid.UUID) {
	s.mu.Lock()
	s.ids = append(s.ids, ids...)
	s.mu.Unlock()
}

func (s *sentNotices) take() []uuid.UUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.ids
	s.ids = nil
	return ids
}

// removeSent removes the outbox rows of notices Kafka has taken.
func (d *Dispatcher) removeSent(ctx context.Context) {
	ids := d.sent.take()
	if len(ids) == 0 || d.cfg.Ephemeral {
		return
	}
	if err := d.store.NoticesSent(ctx, ids); err != nil {
		d.sent.add(ids...)
		d.log.Error(err, "removing sent outcome notices failed; will retry")
	}
}

// sendNotices publishes notices the outbox holds for us; once Kafka has
// them their rows are removed (with the next outcome batch); what Kafka
// refuses stays for the relay.
func (d *Dispatcher) sendNotices(ctx context.Context, notices []store.Notice) {
	if len(notices) == 0 {
		return
	}
	msgs := make([]kafka.Message, len(notices))
	ids := make([]uuid.UUID, len(notices))
	for i, n := range notices {
		msgs[i] = kafka.Message{Topic: n.Topic, Key: n.Key, Value: n.Value, Headers: []kafka.Header{{Key: "outcome-id", Value: []byte(n.ID.String())}}}
		ids[i] = n.ID
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.publisher.WriteMessages(pctx, msgs...); err != nil {
		d.metrics.PublishFailures.Add(float64(len(msgs)))
		d.log.Error(err, "publishing outcome notices failed; the outbox keeps them and the relay retries", "messages", len(msgs))
		if !d.cfg.Ephemeral {
			if err := d.store.NoticesRefused(pctx, ids, err.Error(), d.cfg.OutageRetry); err != nil {
				d.log.Error(err, "recording the refusal failed; the claims lapse and the relay retries")
			}
		}
		return
	}
	d.sent.add(ids...)
}

// relayNotices sends what the outbox holds and nobody is sending (Kafka
// refused it, or its writer died), every PollInterval until ctx ends.
func (d *Dispatcher) relayNotices(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		d.removeSent(ctx) // when no outcome batch came to do it
		for ctx.Err() == nil {
			due, err := d.store.ClaimNotices(ctx, 500, time.Minute)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error(err, "claiming outcome notices failed; will retry")
				}
				return
			}
			d.sendNotices(ctx, due)
			d.removeSent(ctx)
			if len(due) < 500 {
				return
			}
		}
	}, max(d.cfg.PollInterval, time.Second))
}

// PublishEvents writes platform events in the platform's envelope to the
// connectors' events topic, keyed by store so a store's events stay in order.
func (d *Dispatcher) PublishEvents(ctx context.Context, events []connectors.Event) error {
	if len(events) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		at := e.Time
		value, err := json.Marshal(envelope{EventID: e.ID.String(), EventType: e.Type, StoreID: e.StoreID, Time: &at, Data: e.Data})
		if err != nil {
			return fmt.Errorf("encode event %s: %w", e.ID, err)
		}
		msgs[i] = kafka.Message{Topic: d.cfg.Connectors.EventsTopic, Key: []byte(e.StoreID), Value: value}
	}
	if err := d.publisher.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("publish %d events to %s: %w", len(msgs), d.cfg.Connectors.EventsTopic, err)
	}
	return nil
}
