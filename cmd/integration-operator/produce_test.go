package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/dispatcher"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// The producer's events decode as the dispatcher reads them, in both formats.
func TestProduceCommand(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{KafkaTopics: []string{"platform.events"}})
	for _, format := range []string{"envelope", "cloudevents"} {
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{"produce", "--kafka-brokers", bed.Kafka.Brokers()[0], "--format", format,
			"--store", "store-9", "--type", "order.placed", "--count", "3", "--rate", "0"})
		if err := root.ExecuteContext(context.Background()); err != nil || !strings.Contains(out.String(), "published 3 order.placed") {
			t.Fatalf("%s: %q %v", format, out.String(), err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: bed.Kafka.Brokers(), Topic: "platform.events", MaxWait: 50 * time.Millisecond})
	defer r.Close()
	for i := range 6 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		e, err := dispatcher.Decode(m)
		if err != nil || e.StoreID != "store-9" || e.Type != "order.placed" || !strings.Contains(string(e.Data), "demo-") {
			t.Fatalf("message %d: %+v %v", i, e, err)
		}
	}
	root := newRootCommand()
	root.SetArgs([]string{"produce", "--kafka-brokers", bed.Kafka.Brokers()[0], "--format", "xml"})
	if err := root.ExecuteContext(context.Background()); err == nil {
		t.Fatal("an unknown format was accepted")
	}
}
