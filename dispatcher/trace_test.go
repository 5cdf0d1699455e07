package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/testbed"
	"github.com/ss3dev/integration-operator/internal/tracing"
)

// A producer's trace context, in each of the three places an event may
// carry it, continues through consume, persist, every delivery attempt and
// the connector call, all exported over OTLP, and reaches the partner as
// traceparent of the same trace.
func TestTraceContextFollowsEventsToEndpointsAndMarketplaces(t *testing.T) {
	e := startEnv(t)
	otlp := testbed.StartCollector(t)
	tr, err := tracing.Start(context.Background(), tracing.Resolve(tracing.Settings{Endpoint: otlp.Endpoint(), ServiceName: "dispatcher-test"},
		func(string) (string, bool) { return "", false }, nil), "dispatcher")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })

	recv := newReceiver(t)
	sub, secret := e.subscribe(t, "store-trace", recv.URL, []string{"order.*"}, nil)
	amazon := newAmazon(t)
	e.amazonConnector(t, amazon, "store-trace", []string{"inventory.updated"}, time.Hour)
	// The first request fails, so the envelope's event has a second attempt.
	recv.set(http.StatusInternalServerError, 0)
	e.run(t, Config{Tracing: tr, Connectors: fastConnectors, BreakerTrips: 1000,
		RetrySchedule: []time.Duration{0, 200 * time.Millisecond, 200 * time.Millisecond}})

	traceID := func(n int) string { return fmt.Sprintf("%032x", 0xa11ce00+n) }
	parent := func(n int) string { return fmt.Sprintf("%016x", 0xb0b00+n) }
	traceparent := func(n int) []byte { return []byte("00-" + traceID(n) + "-" + parent(n) + "-01") }

	envelope, _ := envelopeMessage(t, "store-trace", "order.placed", map[string]any{"orderId": "o-1", "marker": "payload-marker"})
	envelope.Headers = []kafka.Header{{Key: "traceparent", Value: traceparent(1)}, {Key: "tracestate", Value: []byte("shop=1")}}
	binary := kafka.Message{Value: []byte(`{"orderId":"o-2","marker":"payload-marker"}`), Headers: []kafka.Header{
		{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(uuid.NewString())},
		{Key: "ce_source", Value: []byte("/orders")}, {Key: "ce_type", Value: []byte("order.cancelled")},
		{Key: "ce_storeid", Value: []byte("store-trace")}, {Key: "content-type", Value: []byte("application/json")},
		{Key: "ce_traceparent", Value: traceparent(2)}}}
	structured := kafka.Message{Value: []byte(`{"specversion":"1.0","id":"ce-trace-3","source":"/orders","type":"order.refunded",
		"storeid":"store-trace","traceparent":"` + string(traceparent(3)) + `","data":{"orderId":"o-3","marker":"payload-marker"}}`)}
	stock, _ := envelopeMessage(t, "store-trace", "inventory.updated", map[string]any{"sku": "MUG-1", "quantity": 4})
	stock.Headers = []kafka.Header{{Key: "traceparent", Value: traceparent(4)}}

	e.produce(t, envelope)
	eventually(t, 20*time.Second, "the first attempt fails", func() error {
		if n := len(recv.requests()); n < 1 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	recv.set(http.StatusOK, 0)
	e.produce(t, binary, structured, stock)

	// Each event reaches the endpoint with a traceparent of its own trace,
	// whose parent is that attempt's span.
	sentUnder := map[string][]string{} // trace id -> span ids the partner saw
	eventually(t, 30*time.Second, "every event delivered with its trace", func() error {
		sentUnder = map[string][]string{}
		for _, r := range recv.requests() {
			parts := strings.Split(r.header.Get("traceparent"), "-")
			if len(parts) != 4 {
				return fmt.Errorf("a request without a traceparent: %q", r.header.Get("traceparent"))
			}
			sentUnder[parts[1]] = append(sentUnder[parts[1]], parts[2])
		}
		if len(sentUnder[traceID(1)]) != 2 || len(sentUnder[traceID(2)]) != 1 || len(sentUnder[traceID(3)]) != 1 {
			return fmt.Errorf("traces of the requests: %v", sentUnder)
		}
		return nil
	})
	if got := recv.requests()[0].header.Get("tracestate"); got != "shop=1" {
		t.Errorf("tracestate %q, want the producer's shop=1", got)
	}

	// The OTLP receiver holds consume -> persist -> deliver (and connector) per trace.
	byTrace := map[string][]testbed.Span{}
	eventually(t, 30*time.Second, "the spans exported", func() error {
		if err := tr.ForceFlush(context.Background()); err != nil {
			return err
		}
		byTrace = map[string][]testbed.Span{}
		got, err := otlp.Spans()
		if err != nil {
			return err
		}
		for _, s := range got {
			byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
		}
		for n, want := range map[int]int{1: 4, 2: 3, 3: 3, 4: 3} {
			if len(byTrace[traceID(n)]) < want {
				return fmt.Errorf("trace %d has %d spans, want %d", n, len(byTrace[traceID(n)]), want)
			}
		}
		return nil
	})
	one := func(spans []testbed.Span, name string) testbed.Span {
		t.Helper()
		var found []testbed.Span
		for _, s := range spans {
			if s.Name == name {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%d %s spans in %+v", len(found), name, spans)
		}
		return found[0]
	}
	for n := 1; n <= 4; n++ {
		spans := byTrace[traceID(n)]
		consume, persist := one(spans, "dispatcher.consume"), one(spans, "dispatcher.persist")
		if consume.ParentSpanID != parent(n) || persist.ParentSpanID != consume.SpanID {
			t.Errorf("trace %d: consume's parent %s (want the producer's %s), persist's %s (want consume %s)",
				n, consume.ParentSpanID, parent(n), persist.ParentSpanID, consume.SpanID)
		}
		if consume.Service != "dispatcher-test" || consume.Attributes["ss3.store.id"] != "store-trace" || consume.Attributes["messaging.destination.name"] != eventsTopic {
			t.Errorf("trace %d: consume span %+v", n, consume)
		}
		for _, s := range spans {
			for k, v := range s.Attributes {
				if strings.Contains(v, "payload-marker") || strings.Contains(v, secret) || strings.Contains(v, recv.URL) || strings.Contains(v, amazon.ClientSecret) {
					t.Errorf("span %s attribute %s carries a payload, secret or URL: %q", s.Name, k, v)
				}
			}
		}
		if n == 4 {
			call := one(spans, "dispatcher.connector")
			if call.ParentSpanID != persist.SpanID || call.Attributes["ss3.connector.type"] != "amazon" || call.Attributes["ss3.delivery.outcome"] != "DELIVERED" {
				t.Errorf("connector span %+v (persist %s)", call, persist.SpanID)
			}
			continue
		}
		// Attempts held back before any request (an endpoint limit not yet
		// shared out, say) have spans too, saying no attempt was spent.
		var attempts []testbed.Span
		for _, s := range spans {
			if s.Name == "dispatcher.deliver" && s.Attributes["ss3.delivery.attempt_spent"] != "false" {
				attempts = append(attempts, s)
			}
		}
		if len(attempts) != len(sentUnder[traceID(n)]) {
			t.Fatalf("trace %d: %d attempt spans, %d requests", n, len(attempts), len(sentUnder[traceID(n)]))
		}
		for _, a := range attempts {
			if a.ParentSpanID != persist.SpanID || a.Attributes["ss3.subscription.id"] != sub.ID.String() {
				t.Errorf("trace %d: attempt span %+v, want a child of persist %s for subscription %s", n, a, persist.SpanID, sub.ID)
			}
			if !strings.Contains(strings.Join(sentUnder[traceID(n)], ","), a.SpanID) {
				t.Errorf("trace %d: the partner saw parents %v, not attempt %s", n, sentUnder[traceID(n)], a.SpanID)
			}
		}
		if n == 1 {
			outcomes := map[string]string{}
			for _, a := range attempts {
				outcomes[a.Attributes["ss3.delivery.attempt"]] = a.Attributes["ss3.delivery.outcome"] + "/" + a.Attributes["http.response.status_code"]
			}
			if outcomes["1"] != "FAILED/500" || outcomes["2"] != "DELIVERED/200" {
				t.Errorf("attempts of the retried event: %v", outcomes)
			}
		}
	}
}

// With tracing off, nothing is added to the request.
func TestNoTraceparentWhenTracingIsOff(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	e.subscribe(t, "store-untraced", recv.URL, []string{"order.*"}, nil)
	e.run(t, Config{})
	m, _ := envelopeMessage(t, "store-untraced", "order.placed", map[string]any{"orderId": "o-1"})
	m.Headers = []kafka.Header{{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}}
	e.produce(t, m)
	eventually(t, 20*time.Second, "the delivery", func() error {
		if len(recv.requests()) != 1 {
			return fmt.Errorf("%d requests", len(recv.requests()))
		}
		return nil
	})
	if h := recv.requests()[0].header.Get("traceparent"); h != "" {
		t.Errorf("tracing is off, yet the request carries traceparent %q", h)
	}
}

// An attempt made by another replica (or after a restart) joins the
// event's trace: the persist span's context is stored with the delivery,
// not kept in the memory of the replica that persisted it.
func TestARetryOnAnotherReplicaJoinsTheEventsTrace(t *testing.T) {
	e := startEnv(t)
	otlp := testbed.StartCollector(t)
	startTracing := func(service string) *tracing.Tracing {
		tr, err := tracing.Start(context.Background(), tracing.Resolve(tracing.Settings{Endpoint: otlp.Endpoint(), ServiceName: service},
			func(string) (string, bool) { return "", false }, nil), "dispatcher")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
		return tr
	}
	recv := newReceiver(t)
	e.subscribe(t, "store-handover", recv.URL, []string{"order.*"}, nil)
	recv.set(http.StatusInternalServerError, 0)
	schedule := []time.Duration{0, time.Second}

	first := startTracing("replica-a")
	_, stopFirst := e.start(t, Config{Tracing: first, BreakerTrips: 1000, RetrySchedule: schedule}, []string{eventsTopic})
	const traceID, producerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	m, _ := envelopeMessage(t, "store-handover", "order.placed", map[string]any{"orderId": "o-1"})
	m.Headers = []kafka.Header{{Key: "traceparent", Value: []byte("00-" + traceID + "-" + producerSpan + "-01")}}
	e.produce(t, m)
	eventually(t, 20*time.Second, "the first attempt fails on replica a", func() error {
		if n := len(recv.requests()); n != 1 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	stopFirst()
	recv.set(http.StatusOK, 0)

	second := startTracing("replica-b")
	e.run(t, Config{Tracing: second, BreakerTrips: 1000, RetrySchedule: schedule})
	eventually(t, 20*time.Second, "the retry delivered by replica b", func() error {
		if n := len(recv.requests()); n != 2 {
			return fmt.Errorf("%d requests", n)
		}
		return nil
	})
	for i, r := range recv.requests() {
		if parts := strings.Split(r.header.Get("traceparent"), "-"); len(parts) != 4 || parts[1] != traceID {
			t.Errorf("request %d carries traceparent %q, not of the producer's trace %s", i+1, r.header.Get("traceparent"), traceID)
		}
	}

	var persist, retry testbed.Span
	eventually(t, 30*time.Second, "both replicas' spans exported", func() error {
		if err := errors.Join(first.ForceFlush(context.Background()), second.ForceFlush(context.Background())); err != nil {
			return err
		}
		spans, err := otlp.Spans()
		if err != nil {
			return err
		}
		persist, retry = testbed.Span{}, testbed.Span{}
		for _, s := range spans {
			switch {
			case s.TraceID != traceID:
			case s.Name == "dispatcher.persist" && s.Service == "replica-a":
				persist = s
			case s.Name == "dispatcher.deliver" && s.Service == "replica-b" && s.Attributes["ss3.delivery.attempt"] == "2":
				retry = s
			}
		}
		if persist.SpanID == "" || retry.SpanID == "" {
			return fmt.Errorf("persist span on replica a %q, retry span on replica b %q", persist.SpanID, retry.SpanID)
		}
		return nil
	})
	if retry.ParentSpanID != persist.SpanID || retry.Attributes["ss3.delivery.outcome"] != "DELIVERED" {
		t.Errorf("replica b's attempt %+v, want a delivered child of replica a's persist span %s", retry, persist.SpanID)
	}
	if !strings.Contains(recv.requests()[1].header.Get("traceparent"), retry.SpanID) {
		t.Errorf("the partner saw %q, not replica b's attempt %s", recv.requests()[1].header.Get("traceparent"), retry.SpanID)
	}
}
