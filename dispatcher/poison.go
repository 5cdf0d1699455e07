package dispatcher

import (
	"context"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 3a, set aside: a message that cannot be delivered goes to the
// poison topic unchanged, with its reason and origin added as headers.
// When the topic will not take the copy (too large once the headers are
// added, a topic that refuses writes), the message is kept whole in
// Postgres (poison_messages) and a small stub saying so goes to the topic:
// a poison message never holds up its partition.

// maxReason bounds a reason carried in a header or a row.
const maxReason = 512

func (d *Dispatcher) setAside(ctx context.Context, msgs []routed) error {
	var poison []routed
	for _, m := range msgs {
		if m.poison != nil {
			poison = append(poison, m)
		}
	}
	if len(poison) == 0 {
		return nil
	}
	copies := make([]kafka.Message, len(poison))
	for i, m := range poison {
		d.metrics.Poison.Inc()
		// The content may be sensitive: log where it was, never what.
		d.log.Info("poison message set aside", "topic", m.msg.Topic, "partition", m.msg.Partition, "offset", m.msg.Offset,
			"reason", shortReason(m.poison))
		copies[i] = poisonMessage(d.cfg.Kafka.PoisonTopic, m.msg, m.poison)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := d.publisher.WriteMessages(wctx, copies...)
	cancel()
	if err == nil {
		return nil
	}
	if d.cfg.Ephemeral {
		d.log.Error(err, "setting poison aside failed; ephemeral mode keeps no copy", "messages", len(poison))
		return nil
	}
	// Keep every message of this write (Kafka may have taken some: a
	// duplicate on the topic is harmless, a loss is not).
	kept := make([]store.PoisonMessage, len(poison))
	for i, m := range poison {
		kept[i] = store.PoisonMessage{Topic: m.msg.Topic, Partition: m.msg.Partition, Offset: m.msg.Offset, Key: m.msg.Key,
			Value: m.msg.Value, Reason: shortReason(m.poison)}
		for _, h := range m.msg.Headers {
			kept[i].Headers = append(kept[i].Headers, store.PoisonHeader{Key: h.Key, Value: h.Value})
		}
	}
	if perr := d.store.RecordPoison(ctx, kept); perr != nil {
		return fmt.Errorf("set poison aside: the poison topic refused (%w) and so did Postgres: %w", err, perr)
	}
	d.log.Info("the poison topic refused messages; kept them in Postgres (poison_messages)", "messages", len(poison), "reason", err.Error())
	stubs := make([]kafka.Message, len(poison))
	for i, m := range poison {
		stubs[i] = kafka.Message{Topic: d.cfg.Kafka.PoisonTopic, Headers: []kafka.Header{
			{Key: "poison-reason", Value: []byte(shortReason(m.poison))},
			{Key: "poison-source", Value: []byte(source(m.msg))},
			{Key: "poison-stored-in", Value: []byte("postgres:poison_messages")},
			{Key: "poison-original-bytes", Value: []byte(strconv.Itoa(len(m.msg.Key) + len(m.msg.Value)))},
		}}
	}
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if serr := d.publisher.WriteMessages(wctx, stubs...); serr != nil {
		d.log.Error(serr, "the poison topic refused the stubs too; the messages are in Postgres only", "messages", len(poison))
	}
	return nil
}

func poisonMessage(topic string, m kafka.Message, reason error) kafka.Message {
	headers := append([]kafka.Header{}, m.Headers...)
	headers = append(headers,
		kafka.Header{Key: "poison-reason", Value: []byte(shortReason(reason))},
		kafka.Header{Key: "poison-source", Value: []byte(source(m))})
	return kafka.Message{Topic: topic, Key: m.Key, Value: m.Value, Headers: headers}
}

func source(m kafka.Message) string { return fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset) }

// shortReason is err's text cut to maxReason bytes on a rune boundary.
func shortReason(err error) string {
	s := err.Error()
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
