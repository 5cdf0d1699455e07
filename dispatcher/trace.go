package dispatcher

import (
	"context"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/tracing"
)

// Tracing across the stages: the W3C trace context an event carries (a
// Kafka header traceparent, the CloudEvents binary-mode ce_traceparent, or
// the structured-mode attribute) is the parent of the event's consume
// span; its persist span follows, and every delivery attempt and connector
// call is a child of that, whose context the webhook request carries on
// as traceparent. The persist span's context is written with each
// delivery row (trace_parent, trace_state), so an attempt joins the
// event's trace whichever replica makes it, retries and restarts included.
// Spans carry ids, types, counts and outcomes, never a payload, a URL or
// an error text. All of it is skipped when tracing is off.

// Span attribute keys of our own.
const (
	attrEventID        = attribute.Key("ss3.event.id")
	attrEventType      = attribute.Key("ss3.event.type")
	attrStoreID        = attribute.Key("ss3.store.id")
	attrSubscriptionID = attribute.Key("ss3.subscription.id")
	attrDeliveryID     = attribute.Key("ss3.delivery.id")
	attrAttempt        = attribute.Key("ss3.delivery.attempt")
	attrOutcome        = attribute.Key("ss3.delivery.outcome")
	attrConnectorType  = attribute.Key("ss3.connector.type")
	attrConnectorID    = attribute.Key("ss3.connector.id")
	attrDeliveries     = attribute.Key("ss3.deliveries")
)

// messageCarrier reads a message's trace context: a Kafka header, the
// CloudEvents binary-mode header, or the structured-mode attribute.
type messageCarrier struct {
	m *kafka.Message
	e *Event
}

func (c messageCarrier) Get(key string) string {
	if v := header(*c.m, key); v != "" {
		return v
	}
	if v := header(*c.m, "ce_"+key); v != "" {
		return v
	}
	switch key {
	case "traceparent":
		return c.e.TraceParent
	case "tracestate":
		return c.e.TraceState
	}
	return ""
}

func (messageCarrier) Set(string, string) {}
func (messageCarrier) Keys() []string     { return []string{"traceparent", "tracestate"} }

// batchSpans are the consume and persist spans of one batch's messages.
type batchSpans struct {
	d        *Dispatcher
	spans    []trace.Span
	ctxs     []context.Context
	persists []trace.Span
}

// traceConsumed starts a consume span per message, each a child of the
// context the message carries; nil when tracing is off.
func (d *Dispatcher) traceConsumed(ctx context.Context, msgs []routed) *batchSpans {
	if !d.tracing.Enabled() {
		return nil
	}
	b := &batchSpans{d: d, spans: make([]trace.Span, len(msgs)), ctxs: make([]context.Context, len(msgs))}
	for i := range msgs {
		m := &msgs[i]
		parent := tracing.Propagator.Extract(ctx, messageCarrier{m: &m.msg, e: &m.event})
		attrs := []attribute.KeyValue{
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("messaging.destination.name", m.msg.Topic),
			attribute.String("messaging.destination.partition.id", strconv.Itoa(m.msg.Partition)),
			attribute.Int64("messaging.kafka.offset", m.msg.Offset),
		}
		if m.poison == nil {
			attrs = append(attrs, attrEventID.String(m.event.ID.String()), attrEventType.String(m.event.Type), attrStoreID.String(m.event.StoreID),
				attrDeliveries.Int(len(m.deliveries)+len(m.connectors)))
		}
		b.ctxs[i], b.spans[i] = d.tracing.Tracer().Start(parent, "dispatcher.consume",
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
		if m.poison != nil {
			// The reason may quote what the producer sent: not in the span.
			b.spans[i].SetStatus(codes.Error, "poison: set aside")
		}
	}
	return b
}

// persisting starts each message's persist span (the batch is one
// statement, so every span covers all of it) and stamps its context on
// the message's deliveries, to be stored with them.
func (b *batchSpans) persisting(msgs []routed) {
	if b == nil {
		return
	}
	b.persists = make([]trace.Span, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.poison != nil {
			continue
		}
		ctx, span := b.d.tracing.Tracer().Start(b.ctxs[i], "dispatcher.persist", trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithAttributes(attribute.String("db.system.name", "postgresql"),
				attrEventID.String(m.event.ID.String()), attrDeliveries.Int(len(m.deliveries)+len(m.connectors))))
		b.persists[i] = span
		carrier := propagation.MapCarrier{}
		tracing.Propagator.Inject(ctx, carrier)
		tc := store.TraceContext{Parent: carrier.Get("traceparent"), State: carrier.Get("tracestate")}
		for j := range m.deliveries {
			m.deliveries[j].Trace = tc
		}
		for j := range m.jobs {
			m.jobs[j].Trace = tc
		}
		for j := range m.connectors {
			m.connectors[j].Trace = tc
		}
	}
}

// persisted ends the persist spans; err is why the batch must be retried.
func (b *batchSpans) persisted(err error) {
	if b != nil {
		endBatch(b.persists, err)
	}
}

// end ends the consume spans; err is why the batch must be retried.
func (b *batchSpans) end(err error) {
	if b != nil {
		endBatch(b.spans, err)
	}
}

// endBatch ends one kind of the batch's spans (nil: a poison message's
// persist span, never started), saying so when the batch failed.
func endBatch(spans []trace.Span, err error) {
	for _, s := range spans {
		if s == nil {
			continue
		}
		if err != nil {
			s.SetStatus(codes.Error, "the batch could not be persisted; retried")
		}
		s.End()
	}
}

// withPersisted is ctx with a delivery's persisted trace context as the
// remote parent (unchanged when it has none).
func withPersisted(ctx context.Context, tc store.TraceContext) context.Context {
	if tc.Parent == "" {
		return ctx
	}
	return tracing.Propagator.Extract(ctx, propagation.MapCarrier{"traceparent": tc.Parent, "tracestate": tc.State})
}

// startAttempt starts the span of one delivery attempt, a child of the
// event's persist span.
func (d *Dispatcher) startAttempt(ctx context.Context, del store.Delivery) (context.Context, trace.Span) {
	if !d.tracing.Enabled() {
		return ctx, nil
	}
	ctx = withPersisted(ctx, del.Trace)
	return d.tracing.Tracer().Start(ctx, "dispatcher.deliver", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attrDeliveryID.String(del.ID.String()), attrSubscriptionID.String(del.SubscriptionID.String()),
		attrEventID.String(del.EventID.String()), attrEventType.String(del.EventType), attrStoreID.String(del.StoreID),
		attrAttempt.Int(del.Attempts+1), attribute.String("http.request.method", "POST")))
}

// endAttempt ends an attempt's span with what became of it.
func (d *Dispatcher) endAttempt(span trace.Span, del store.Delivery, r attemptResult, o store.Outcome) {
	if span == nil {
		return
	}
	span.SetAttributes(attrOutcome.String(o.Status))
	if r.status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", r.status))
	}
	switch {
	case o.Status == store.DeliveryDelivered:
		span.SetStatus(codes.Ok, "")
	case r.waitFor > 0 || r.outage:
		span.SetAttributes(attribute.Bool("ss3.delivery.attempt_spent", false))
	default:
		span.SetStatus(codes.Error, "the endpoint did not take the delivery")
	}
	span.End()
}

// traceConnectorCall records one adapter call as a span per event it
// carried (the call is one for the batch; each event's trace gets it).
func (d *Dispatcher) traceConnectorCall(batch []store.ConnectorDelivery, outcomes []store.ConnectorOutcome, start, end time.Time) {
	if !d.tracing.Enabled() {
		return
	}
	for i, del := range batch {
		_, span := d.tracing.Tracer().Start(withPersisted(context.Background(), del.Trace), "dispatcher.connector", trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attrConnectorType.String(del.ConnectorType), attrConnectorID.String(del.ConfigID.String()),
				attrDeliveryID.String(del.ID.String()), attrEventID.String(del.EventID.String()), attrEventType.String(del.EventType),
				attrStoreID.String(del.StoreID), attrAttempt.Int(del.Attempts+1), attrOutcome.String(outcomes[i].Status),
				attrDeliveries.Int(len(batch))))
		if outcomes[i].Status == store.DeliveryDelivered {
			span.SetStatus(codes.Ok, "")
		} else {
			span.SetStatus(codes.Error, "the marketplace did not take the event")
		}
		span.End(trace.WithTimestamp(end))
	}
}

// injectTrace puts the attempt's trace context on the webhook request, so
// the partner's trace joins the platform's.
func (d *Dispatcher) injectTrace(ctx context.Context, h propagation.HeaderCarrier) {
	if d.tracing.Enabled() {
		tracing.Propagator.Inject(ctx, h)
	}
}
