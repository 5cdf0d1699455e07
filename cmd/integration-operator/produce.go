package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"
)

type produceOptions struct {
	brokers   string
	topic     string
	storeID   string
	eventType string
	rate      float64
	count     int
	format    string
	data      string
}

// newProduceCommand publishes platform events, for demos and load.
func newProduceCommand() *cobra.Command {
	var o produceOptions
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Publish platform events of a chosen type, store and rate to Kafka (demos and load)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := produce(cmd.Context(), o)
			fmt.Fprintf(cmd.OutOrStdout(), "published %d %s event(s) for store %s to %s\n", n, o.eventType, o.storeID, o.topic)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.brokers, "kafka-brokers", envDefault("KAFKA_BROKERS", "127.0.0.1:9092"), "comma-separated bootstrap brokers")
	f.StringVar(&o.topic, "topic", "platform.events", "topic to publish to")
	f.StringVar(&o.storeID, "store", "store-1042", "store id of the events")
	f.StringVar(&o.eventType, "type", "order.placed", "event type")
	f.Float64Var(&o.rate, "rate", 10, "events per second (0: as fast as possible)")
	f.IntVar(&o.count, "count", 1, "events to publish")
	f.StringVar(&o.format, "format", "envelope", "envelope (the platform's JSON) or cloudevents (binary mode)")
	f.StringVar(&o.data, "data", `{"orderId":"demo-{n}","total":"19.99"}`, "event data as JSON; {n} is replaced by the event's number")
	return cmd
}

func produce(ctx context.Context, o produceOptions) (int, error) {
	if o.format != "envelope" && o.format != "cloudevents" {
		return 0, fmt.Errorf("--format must be envelope or cloudevents, not %q", o.format)
	}
	if !json.Valid([]byte(o.data)) {
		return 0, errors.New("--data must be JSON")
	}
	w := &kafka.Writer{Addr: kafka.TCP(splitList(o.brokers)...), Topic: o.topic, Balancer: &kafka.Hash{},
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	limit := rate.Inf
	if o.rate > 0 {
		limit = rate.Limit(o.rate)
	}
	limiter := rate.NewLimiter(limit, max(1, int(o.rate/10)))
	batch := make([]kafka.Message, 0, 100)
	sent := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return err
		}
		sent += len(batch)
		batch = batch[:0]
		return nil
	}
	for i := range o.count {
		if err := limiter.Wait(ctx); err != nil {
			return sent, flush()
		}
		data := json.RawMessage(replaceN(o.data, i))
		id := uuid.New()
		var m kafka.Message
		if o.format == "cloudevents" {
			m = kafka.Message{Key: []byte(o.storeID), Value: data, Headers: []kafka.Header{
				{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id.String())},
				{Key: "ce_source", Value: []byte("/integration-operator/produce")}, {Key: "ce_type", Value: []byte(o.eventType)},
				{Key: "ce_storeid", Value: []byte(o.storeID)}, {Key: "ce_time", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
				{Key: "content-type", Value: []byte("application/json")}}}
		} else {
			value, err := json.Marshal(map[string]any{"eventId": id, "eventType": o.eventType, "storeId": o.storeID,
				"time": time.Now().UTC(), "data": data})
			if err != nil {
				return sent, err
			}
			m = kafka.Message{Key: []byte(o.storeID), Value: value}
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) || o.rate > 0 && o.rate < 100 {
			if err := flush(); err != nil {
				return sent, err
			}
		}
	}
	return sent, flush()
}

func replaceN(s string, n int) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		if i+3 <= len(s) && s[i:i+3] == "{n}" {
			out = fmt.Appendf(out, "%d", n)
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return string(out)
}
