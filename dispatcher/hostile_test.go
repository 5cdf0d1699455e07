package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/inbound"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Each test here feeds one kind of hostile input while other subscriptions
// (and other stores) have traffic, and checks both that the others keep
// receiving and that the bad input's own outcome is recorded.

// rawEnvelope is an envelope whose data is the given bytes, as produced.
func rawEnvelope(storeID, eventType, data string) (kafka.Message, uuid.UUID) {
	id := uuid.New()
	value := fmt.Sprintf(`{"eventId":%q,"eventType":%q,"storeId":%q,"data":%s}`, id, eventType, storeID, data)
	return kafka.Message{Key: []byte("same-partition"), Value: []byte(value)}, id
}

func goodEvents(t *testing.T, storeID string, n int) []kafka.Message {
	var msgs []kafka.Message
	for i := range n {
		m, _ := envelopeMessage(t, storeID, "order.placed", map[string]any{"n": i})
		m.Key = []byte("same-partition")
		msgs = append(msgs, m)
	}
	return msgs
}

func waitRequests(t *testing.T, r *receiver, n int, what string) {
	t.Helper()
	eventually(t, 30*time.Second, what, func() error {
		if got := len(r.requests()); got != n {
			return fmt.Errorf("%d of %d requests", got, n)
		}
		return nil
	})
}

func TestEndpointAnswersPostgresCannotHoldAreRecorded(t *testing.T) {
	e := startEnv(t)
	nul, failing, good, other := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	nul.setAnswer([]byte("accepted\x00\x00 but with NULs"))
	failing.setAnswer([]byte("\xff\xfe broken \x00 and cut mid rune \xe2\x82"))
	failing.set(http.StatusInternalServerError, 0)
	nulSub, _ := e.subscribe(t, "store-a", nul.URL, []string{"order.*"}, nil)
	failingSub, _ := e.subscribe(t, "store-a", failing.URL, []string{"order.*"}, nil)
	e.subscribe(t, "store-a", good.URL, []string{"order.*"}, nil)
	e.subscribe(t, "store-b", other.URL, []string{"order.*"}, nil)
	e.run(t, Config{RetrySchedule: []time.Duration{0, 100 * time.Millisecond}, BreakerTrips: 1000})

	e.produce(t, goodEvents(t, "store-a", 40)...)
	e.produce(t, goodEvents(t, "store-b", 10)...)
	waitRequests(t, good, 40, "the well-behaved endpoint receives everything")
	waitRequests(t, other, 10, "another store's endpoint receives everything")
	eventually(t, 30*time.Second, "every outcome recorded, bodies flagged sanitised", func() error {
		var delivered, dead int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT
			count(*) FILTER (WHERE subscription_id = $1 AND status = 'DELIVERED' AND response_body_sanitised
				AND response_body = 'accepted'||U&'\FFFD\FFFD'||' but with NULs'),
			count(*) FILTER (WHERE subscription_id = $2 AND status = 'DEAD_LETTERED' AND response_body_sanitised AND http_status = 500)
			FROM webhook_deliveries`, nulSub.ID, failingSub.ID).Scan(&delivered, &dead)
		if err != nil || delivered != 40 || dead != 40 {
			return fmt.Errorf("delivered %d, dead-lettered %d of 40 each: %v", delivered, dead, err)
		}
		return nil
	})
	if n := len(nul.requests()); n != 40 {
		t.Fatalf("the NUL-answering endpoint got %d requests for 40 events: a recorded outcome was attempted again", n)
	}
	stats, err := e.store.SubscriptionStatsAll(context.Background())
	if st := stats[failingSub.ID]; err != nil || st.DeadLettered != 40 || !strings.Contains(st.LastError, "500") {
		t.Fatalf("stats of the failing subscription: %+v %v", st, err)
	}
}

func TestHostileEventsCostOnlyThemselves(t *testing.T) {
	e := startEnv(t)
	a, b := newReceiver(t), newReceiver(t)
	subA, _ := e.subscribe(t, "store-a", a.URL, []string{"order.*"}, nil)
	e.subscribe(t, "store-b", b.URL, []string{"order.*"}, nil)
	e.run(t, Config{})

	// Deliverable, though jsonb refuses them as they are: sent as produced.
	deliverable := []string{`{"note":"a\u0000b"}`, `{"s":"\ud800"}`, `{"n":1e1000000}`, `{ "b" : 1,` + "\n" + ` "a":1e3 }`}
	var msgs []kafka.Message
	ids := map[uuid.UUID]string{}
	for _, data := range deliverable {
		m, id := rawEnvelope("store-a", "order.placed", data)
		msgs = append(msgs, m)
		ids[id] = data
	}
	binaryCE := func(header, value string) kafka.Message {
		h := map[string]string{"ce_specversion": "1.0", "ce_id": uuid.NewString(), "ce_source": "/orders", "ce_type": "order.placed",
			"ce_storeid": "store-a", "content-type": "application/json"}
		h[header] = value
		m := kafka.Message{Key: []byte("same-partition"), Value: []byte(`{"orderId":"o-1"}`)}
		for k, v := range h {
			m.Headers = append(m.Headers, kafka.Header{Key: k, Value: []byte(v)})
		}
		return m
	}
	invalidUTF8, _ := rawEnvelope("store-a", "order.placed", "{\"s\":\"\xff\xfe\"}")
	nulType := kafka.Message{Key: []byte("same-partition"),
		Value: []byte(fmt.Sprintf(`{"eventId":%q,"eventType":"order.placed\u0000","storeId":"store-a","data":{}}`, uuid.New()))}
	longStore, _ := rawEnvelope(strings.Repeat("s", 300), "order.placed", `{}`)
	undeliverable := []kafka.Message{invalidUTF8, nulType, longStore, binaryCE("ce_type", "order.\xffplaced"),
		binaryCE("ce_storeid", "store-\xc3"), binaryCE("ce_source", "/\x00orders")}
	msgs = append(msgs, undeliverable...)
	msgs = append(msgs, goodEvents(t, "store-a", 10)...)
	msgs = append(msgs, goodEvents(t, "store-b", 10)...)
	e.produce(t, msgs...)

	waitRequests(t, a, len(deliverable)+10, "store-a's endpoint receives the deliverable events and the good ones")
	waitRequests(t, b, 10, "store-b's endpoint receives everything")
	got := map[string]string{}
	for _, r := range a.requests() {
		got[r.header.Get(HeaderDelivery)] = string(r.body)
	}
	for id, data := range ids {
		var deliveryID uuid.UUID
		var sanitised bool
		eventually(t, 10*time.Second, "outcome recorded", func() error {
			return e.store.Pool().QueryRow(context.Background(), `SELECT delivery_id, p.payload_sanitised FROM webhook_deliveries JOIN event_payloads p USING (payload_digest, event_time)
				WHERE subscription_id = $1 AND event_id = $2 AND status = 'DELIVERED'`, subA.ID, id).Scan(&deliveryID, &sanitised)
		})
		if got[deliveryID.String()] != data {
			t.Errorf("sent %q for the event produced as %q", got[deliveryID.String()], data)
		}
		if wantSanitised := !strings.Contains(data, "1e3"); sanitised != wantSanitised {
			t.Errorf("%q: payload_sanitised = %v", data, sanitised)
		}
	}
	poison := e.readTopic(t, "platform.events.poison", len(undeliverable))
	for _, p := range poison {
		if header(p, "poison-reason") == "" || header(p, "poison-source") == "" {
			t.Errorf("poison message without its reason: %v", p.Headers)
		}
	}
}

func TestPoisonTooLargeForThePoisonTopicIsKeptInPostgres(t *testing.T) {
	e := startEnv(t)
	recv, other := newReceiver(t), newReceiver(t)
	e.subscribe(t, "store-a", recv.URL, []string{"order.*"}, nil)
	e.subscribe(t, "store-b", other.URL, []string{"order.*"}, nil)
	// The poison topic takes less than the events topic does: the copy of a
	// large message no longer fits.
	client := &kafka.Client{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Timeout: 10 * time.Second}
	res, err := client.AlterConfigs(context.Background(), &kafka.AlterConfigsRequest{Resources: []kafka.AlterConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: "platform.events.poison",
		Configs: []kafka.AlterConfigRequestConfig{{Name: "max.message.bytes", Value: "50000"}}}}})
	if err != nil || res.Errors[kafka.AlterConfigsResponseResource{Type: int8(kafka.ResourceTypeTopic), Name: "platform.events.poison"}] != nil {
		t.Fatalf("limit the poison topic: %v %v", err, res)
	}
	e.run(t, Config{})
	large := bytes.Repeat([]byte("not json "), 60000/9)
	e.produce(t, append(append([]kafka.Message{{Key: []byte("same-partition"), Value: large}}, goodEvents(t, "store-a", 10)...),
		goodEvents(t, "store-b", 10)...)...)
	waitRequests(t, recv, 10, "the events after the large poison message are delivered")
	waitRequests(t, other, 10, "another store's events after it are delivered")

	var value []byte
	var reason string
	eventually(t, 10*time.Second, "the message kept whole in Postgres", func() error {
		return e.store.Pool().QueryRow(context.Background(), `SELECT message_value, reason FROM poison_messages`).Scan(&value, &reason)
	})
	if !bytes.Equal(value, large) || reason != "value is not JSON" {
		t.Fatalf("kept %d bytes (want %d), reason %q", len(value), len(large), reason)
	}
	stub := e.readTopic(t, "platform.events.poison", 1)[0]
	if header(stub, "poison-stored-in") != "postgres:poison_messages" || header(stub, "poison-reason") != "value is not JSON" {
		t.Fatalf("stub on the poison topic: %v", stub.Headers)
	}
}

func TestAStalledPartitionShowsAndRecovers(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	e.subscribe(t, "store-x", recv.URL, []string{"order.*"}, nil)
	ctx := context.Background()
	allow := e.refuseStoreXWrites(t)
	d := e.run(t, Config{OutageRetry: 200 * time.Millisecond})
	e.produce(t, goodEvents(t, "store-x", 3)...)

	eventually(t, 20*time.Second, "the stall recorded for store-x and shown by the metric", func() error {
		stalls, err := e.store.IntakeStalls(ctx, time.Minute)
		if err != nil || len(stalls) != 1 || len(stalls[0].StoreIDs) != 1 || stalls[0].StoreIDs[0] != "store-x" ||
			!strings.Contains(stalls[0].Reason, "no space left") {
			return fmt.Errorf("stalls %+v: %v", stalls, err)
		}
		if v := testutil.ToFloat64(d.metrics.IntakeBlocked); v <= 0 {
			return fmt.Errorf("dispatcher_intake_blocked_seconds = %v", v)
		}
		return nil
	})
	allow()
	waitRequests(t, recv, 3, "the events delivered once Postgres takes them")
	eventually(t, 10*time.Second, "the stall cleared", func() error {
		stalls, err := e.store.IntakeStalls(ctx, time.Minute)
		if err != nil || len(stalls) != 0 || testutil.ToFloat64(d.metrics.IntakeBlocked) != 0 {
			return fmt.Errorf("stalls %+v, metric %v: %v", stalls, testutil.ToFloat64(d.metrics.IntakeBlocked), err)
		}
		return nil
	})
}

func TestEveryAttemptSendsTheBytesProduced(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	recv.set(http.StatusServiceUnavailable, 0)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.*"}, nil)
	e.run(t, Config{RetrySchedule: []time.Duration{0, 100 * time.Millisecond, 100 * time.Millisecond}, BreakerTrips: 1000})
	// Key order, spacing, escapes and number forms that a jsonb round trip
	// would all change.
	data := `{ "z" : 1e3, "a": [1.50, -0.0], "s": "caf\u00e9 \ud83d\ude00 \/ \u0000", "b":true }`
	m, eventID := rawEnvelope("store-a", "order.placed", data)
	e.produce(t, m)
	var deliveryID uuid.UUID
	eventually(t, 20*time.Second, "dead-lettered after three attempts", func() error {
		return e.store.Pool().QueryRow(context.Background(), `SELECT delivery_id FROM webhook_deliveries
			WHERE subscription_id = $1 AND event_id = $2 AND status = 'DEAD_LETTERED'`, sub.ID, eventID).Scan(&deliveryID)
	})
	recv.set(http.StatusOK, 0)
	if ok, err := e.store.RequeueDelivery(context.Background(), deliveryID); err != nil || !ok {
		t.Fatalf("re-trigger: %v %v", ok, err)
	}
	waitRequests(t, recv, 4, "three attempts and the re-triggered one")
	for i, r := range recv.requests() {
		if string(r.body) != data {
			t.Errorf("attempt %d sent %q, want the bytes produced %q", i+1, r.body, data)
		}
		if r.header.Get(HeaderDelivery) != deliveryID.String() {
			t.Errorf("attempt %d has delivery id %s", i+1, r.header.Get(HeaderDelivery))
		}
	}
}

func TestSignedStripeEventsPostgresCannotHoldAreAccepted(t *testing.T) {
	e := startEnv(t)
	const secret = "whsec_stripe_endpoint_secret"
	configID := e.connector(t, "stripe", "store-s", nil, nil, map[string]string{"api-secret": secret}, 0)
	recv, other := newReceiver(t), newReceiver(t)
	e.subscribe(t, "store-s", recv.URL, []string{"stripe.*"}, nil)
	e.subscribe(t, "store-o", other.URL, []string{"order.*"}, nil)
	d := e.run(t, Config{Connectors: fastConnectors})
	srv := httptest.NewServer(d.InboundHandler())
	t.Cleanup(srv.Close)
	endpoint := srv.URL + "/connectors/" + configID.String() + "/webhook"
	body := []byte(`{"id":"evt_nul","object":"event","type":"charge.succeeded","created":1763900000,"livemode":false,` +
		`"data":{"object":{"id":"ch_1","description":"gift \u0000 wrap \ud800"}}}`)
	header := http.Header{"Stripe-Signature": {inbound.SignStripe(body, secret, time.Now())}}
	for replay := range 2 {
		if code, answer := post(t, endpoint, "application/json", header, body); code != http.StatusOK ||
			strings.Contains(answer, "duplicate") != (replay == 1) {
			t.Fatalf("attempt %d: %d %s", replay+1, code, answer)
		}
	}
	e.produce(t, goodEvents(t, "store-o", 10)...)
	waitRequests(t, recv, 1, "the Stripe event reaches the store's subscription")
	waitRequests(t, other, 10, "another store's events keep flowing")
	var delivered struct {
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(recv.requests()[0].body, &delivered); err != nil || !bytes.Equal(delivered.Event, body) {
		t.Fatalf("the event delivered is not Stripe's bytes: %s (%v)", recv.requests()[0].body, err)
	}
	health, err := e.store.ConnectorHealths(context.Background())
	if h := health[configID]; err != nil || h.InboundAccepted != 1 || h.InboundDuplicates != 1 {
		t.Fatalf("counts %+v: %v", h, err)
	}
}

func TestMarketplaceErrorsPostgresCannotHoldEndTheirEvents(t *testing.T) {
	e := startEnv(t)
	ebay, configID := e.ebayConnector(t, "store-m", []string{"inventory.updated"})
	recv := newReceiver(t)
	e.subscribe(t, "store-m", recv.URL, []string{"inventory.*"}, nil)
	e.run(t, Config{Connectors: fastConnectors})
	ctx := context.Background()

	// A refusal (permanent) whose text is not UTF-8 and is cut mid-rune.
	ebay.FailNextWith(1, http.StatusBadRequest, append([]byte(`{"errors":[{"message":"\xff\xfe`), "é"[:1]...))
	refused, refusedID := envelopeMessage(t, "store-m", "inventory.updated", map[string]any{"sku": "SKU-1", "quantity": 1})
	e.produce(t, refused)
	eventually(t, 20*time.Second, "the refused event dead-lettered with the marketplace's answer", func() error {
		status, _, lastError, err := e.store.ConnectorDeliveryStatus(ctx, configID, refusedID)
		if err != nil || status != store.DeliveryDeadLettered || !strings.Contains(lastError, "400") {
			return fmt.Errorf("%s %q %v", status, lastError, err)
		}
		return nil
	})
	// Transient failures with a broken answer: retried, then delivered.
	ebay.FailNextWith(2, http.StatusServiceUnavailable, []byte("\x00\xff\xe2\x82"))
	retried, retriedID := envelopeMessage(t, "store-m", "inventory.updated", map[string]any{"sku": "SKU-2", "quantity": 2})
	e.produce(t, retried)
	eventually(t, 20*time.Second, "the retried event delivered", func() error {
		status, attempts, _, err := e.store.ConnectorDeliveryStatus(ctx, configID, retriedID)
		if err != nil || status != store.DeliveryDelivered || attempts != 3 {
			return fmt.Errorf("%s after %d attempts: %v", status, attempts, err)
		}
		return nil
	})
	waitRequests(t, recv, 2, "the store's webhook gets both events")
	time.Sleep(time.Second) // several claim cycles: nothing is sent again
	if n := ebay.Failed(); n != 3 {
		t.Fatalf("the marketplace answered %d failures, want 3 (one refusal, two outages): outcomes were not recorded", n)
	}
	runs, err := e.store.SyncRuns(ctx, configID, 10)
	if err != nil || len(runs) < 3 {
		t.Fatalf("%d sync runs: %v", len(runs), err)
	}
}

// panicky panics on any event whose data says so, as an adapter with a
// parsing bug might on a hostile payload.
type panicky struct{ connectors.ReceiveOnly }

func (panicky) Type() string { return "panicky" }

func (panicky) HandleEvents(_ context.Context, events []connectors.Event) []error {
	for _, e := range events {
		if bytes.Contains(e.Data, []byte("boom")) {
			panic("index out of range")
		}
	}
	return make([]error, len(events))
}

func TestAnAdapterPanicCostsOnlyItsEvent(t *testing.T) {
	events := []connectors.Event{{Data: []byte(`{"a":1}`)}, {Data: []byte(`{"a":"boom"}`)}, {Data: []byte(`{"a":3}`)}}
	errs := handleContained(context.Background(), panicky{}, events)
	if len(errs) != 3 || errs[0] != nil || errs[2] != nil {
		t.Fatalf("the other events: %v", errs)
	}
	if errs[1] == nil || !connectors.IsPermanent(errs[1]) || !strings.Contains(errs[1].Error(), "index out of range") {
		t.Fatalf("the event the adapter panics on: %v", errs[1])
	}
}
