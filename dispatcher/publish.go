package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 7, publish: webhook.delivered and webhook.dead_lettered, as the
// platform specifies them, keyed by subscription so each subscription's
// outcomes stay in order; and the platform events connectors bring in.

type deliveredMessage struct {
	DeliveryID     string `json:"deliveryId"`
	SubscriptionID string `json:"subscriptionId"`
	StoreID        string `json:"storeId"`
	EventType      string `json:"eventType"`
}

type deadLetteredMessage struct {
	DeliveryID     string `json:"deliveryId"`
	SubscriptionID string `json:"subscriptionId"`
	StoreID        string `json:"storeId"`
	Reason         string `json:"reason"`
}

func (d *Dispatcher) publishOutcomes(ctx context.Context, results []result) {
	var msgs []kafka.Message
	for _, r := range results {
		var topic string
		var payload any
		switch r.outcome.Status {
		case store.DeliveryDelivered:
			topic = d.cfg.Kafka.DeliveredTopic
			payload = deliveredMessage{DeliveryID: r.delivery.ID.String(), SubscriptionID: r.delivery.SubscriptionID.String(),
				StoreID: r.delivery.StoreID, EventType: r.delivery.EventType}
		case store.DeliveryDeadLettered:
			topic = d.cfg.Kafka.DeadLetteredTopic
			payload = deadLetteredMessage{DeliveryID: r.delivery.ID.String(), SubscriptionID: r.delivery.SubscriptionID.String(),
				StoreID: r.delivery.StoreID, Reason: r.reason}
		default:
			continue
		}
		value, err := json.Marshal(payload)
		if err != nil {
			continue
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(r.delivery.SubscriptionID.String()), Value: value})
	}
	if len(msgs) == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.publisher.WriteMessages(pctx, msgs...); err != nil {
		d.metrics.PublishFailures.Add(float64(len(msgs)))
		d.log.Error(err, "publishing delivery outcomes failed", "messages", len(msgs))
	}
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
