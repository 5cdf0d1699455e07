package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// hostileDocs are JSON documents Go accepts and jsonb does not (or only
// some of them), each with whether the jsonb copy must be flagged sanitised.
var hostileDocs = []struct {
	name      string
	doc       string
	sanitised bool
}{
	{"plain", `{"orderId":"o-1","total":12.50}`, false},
	{"spacing and order kept", "{ \"b\" : 1,\n \"a\":1e3 }", false},
	{"NUL escape", `{"note":"a\u0000b"}`, true},
	{"NUL escape in a key", `{"k\u0000":1}`, true},
	{"lone high surrogate", `{"s":"\ud800"}`, true},
	{"lone low surrogate", `{"s":"x\udc00y"}`, true},
	{"surrogate pair", `{"s":"\ud83d\ude00"}`, false},
	{"escaped backslash before u0000", `{"s":"\\u0000"}`, false},
	{"invalid UTF-8", "{\"s\":\"\xff\xfe\"}", true},
	{"UTF-8 encoded surrogate", "{\"s\":\"\xed\xa0\x80\"}", true},
	{"number beyond numeric", `{"n":1e1000000}`, true},
	// As deep as Go's parser goes (10,000 levels): Postgres takes it too.
	{"deep nesting", strings.Repeat("[", 9999) + strings.Repeat("]", 9999), false},
}

func hostileStore(t testing.TB) (*store.Store, context.Context) {
	t.Helper()
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	return bed.Store(t), context.Background()
}

// activeConnector stores an active connector of typ for storeID.
func activeConnector(t testing.TB, st *store.Store, storeID, typ string) store.ConnectorConfig {
	t.Helper()
	cfg := store.ConnectorConfig{ID: uuid.New(), StoreID: storeID, ConnectorType: typ, DisplayName: typ, IsActive: true}
	if _, err := st.UpsertConnectorConfig(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Every document is stored, its bytes come back unchanged for each attempt,
// and the jsonb copy is the document itself unless flagged sanitised.
func TestHostilePayloadsAreStoredAndSentAsProduced(t *testing.T) {
	st, ctx := hostileStore(t)
	sub := store.Subscription{ID: uuid.New(), StoreID: "store-h", Name: "h", TargetURL: "https://example.com/h", Events: []string{"order.*"},
		IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3, MaxConcurrency: 1}
	if _, err := st.UpsertSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	cfg := activeConnector(t, st, "store-h", "ebay")
	var deliveries []store.NewDelivery
	var toConnectors []store.NewConnectorDelivery
	for _, h := range hostileDocs {
		event := uuid.New()
		deliveries = append(deliveries, store.NewDelivery{ID: uuid.New(), SubscriptionID: sub.ID, EventID: event, StoreID: "store-h",
			EventType: "order.placed", Payload: []byte(h.doc)})
		toConnectors = append(toConnectors, store.NewConnectorDelivery{ID: uuid.New(), ConfigID: cfg.ID, EventID: event, StoreID: "store-h",
			EventType: "order.placed", Payload: []byte(h.doc)})
	}
	// All in one batch: one refused document must not cost the others.
	inserted, err := st.InsertDeliveries(ctx, deliveries, store.NewClaim(time.Millisecond))
	if err != nil || len(inserted) != len(hostileDocs) {
		t.Fatalf("inserted %d of %d: %v", len(inserted), len(hostileDocs), err)
	}
	if err := st.InsertConnectorDeliveries(ctx, toConnectors); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // the insert's claim lapses
	claimed, err := st.ClaimDue(ctx, 100, time.Minute)
	if err != nil || len(claimed) != len(hostileDocs) {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	byID := map[uuid.UUID][]byte{}
	for _, c := range claimed {
		byID[c.ID] = c.Payload
	}
	connClaimed, err := st.ClaimConnectorDeliveries(ctx, 100, time.Minute)
	if err != nil || len(connClaimed) != len(hostileDocs) {
		t.Fatalf("claimed %d connector deliveries: %v", len(connClaimed), err)
	}
	connByEvent := map[uuid.UUID][]byte{}
	for _, c := range connClaimed {
		connByEvent[c.EventID] = c.Payload
	}
	for i, h := range hostileDocs {
		if got := byID[deliveries[i].ID]; !bytes.Equal(got, []byte(h.doc)) {
			t.Errorf("%s: claimed payload differs from the bytes produced", h.name)
		}
		if got := connByEvent[deliveries[i].EventID]; !bytes.Equal(got, []byte(h.doc)) {
			t.Errorf("%s: claimed connector payload differs from the bytes produced", h.name)
		}
		for _, table := range []string{"webhook_deliveries", "connector_deliveries"} {
			var sanitised, sameAsDoc bool // sameAsDoc: no copy kept, the bytes read as jsonb
			err := st.Pool().QueryRow(ctx, `SELECT p.payload_sanitised, NOT p.payload_sanitised AND p.event_payload IS NULL AND convert_from(p.raw_payload, 'UTF8')::jsonb IS NOT NULL
				FROM `+table+` d JOIN event_payloads p USING (payload_digest, event_time) WHERE d.event_id = $1`, deliveries[i].EventID).Scan(&sanitised, &sameAsDoc)
			if err != nil {
				t.Fatalf("%s in %s: %v", h.name, table, err)
			}
			if sanitised != h.sanitised || (!h.sanitised && !sameAsDoc) {
				t.Errorf("%s in %s: sanitised=%v (want %v), jsonb equals the document: %v", h.name, table, sanitised, h.sanitised, sameAsDoc)
			}
		}
	}
}

// hostileTexts are what endpoints and marketplaces answer with.
var hostileTexts = []string{"ok\x00ok", "\x00", "\xff\xfe\xfd", "cut mid rune \xe2\x82", "\xed\xa0\x80", strings.Repeat("\x00\xff", 3000)}

// Every outside string reaches its column, changed only where it must be,
// and a changed response body is flagged.
func TestHostileAnswersAndErrorsAreRecorded(t *testing.T) {
	st, ctx := hostileStore(t)
	sub := store.Subscription{ID: uuid.New(), StoreID: "store-h", Name: "h", TargetURL: "https://example.com/h", Events: []string{"order.*"},
		IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3, MaxConcurrency: 1}
	if _, err := st.UpsertSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	cfg := activeConnector(t, st, "store-h", "stripe")
	texts := append([]string{"receiver says hi"}, hostileTexts...)
	var deliveries []store.NewDelivery
	var outcomes []store.Outcome
	var deltas []store.StatsDelta
	var connectorWork []store.NewConnectorDelivery
	for range texts {
		d := store.NewDelivery{ID: uuid.New(), SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-h", EventType: "order.placed", Payload: []byte(`{}`)}
		deliveries = append(deliveries, d)
		connectorWork = append(connectorWork, store.NewConnectorDelivery{ID: uuid.New(), ConfigID: cfg.ID, EventID: d.EventID, StoreID: "store-h",
			EventType: "order.placed", Payload: []byte(`{}`)})
	}
	if _, err := st.InsertDeliveries(ctx, deliveries, store.NewClaim(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertConnectorDeliveries(ctx, connectorWork); err != nil {
		t.Fatal(err)
	}
	var connectorOutcomes []store.ConnectorOutcome
	var runs []store.SyncRun
	for i, txt := range texts {
		status := 200
		outcomes = append(outcomes, store.Outcome{DeliveryID: deliveries[i].ID, Status: store.DeliveryFailed, Attempts: 1, HTTPStatus: &status,
			ResponseBody: &txt, Error: "the endpoint answered: " + txt, RetryIn: ptr(time.Minute)})
		deltas = append(deltas, store.StatsDelta{SubscriptionID: sub.ID, FailedAttempts: 1, TrailingFailures: 1, LastAttemptAt: time.Now(),
			LastError: txt, DeadLetterReason: txt})
		connectorOutcomes = append(connectorOutcomes, store.ConnectorOutcome{DeliveryID: connectorWork[i].ID, ConfigID: cfg.ID,
			Status: store.DeliveryDeadLettered, Attempts: 1, Error: "marketplace: " + txt, Attempted: true})
		runs = append(runs, store.SyncRun{ConfigID: cfg.ID, Direction: store.SyncOutbound, EntityType: "product" + txt, Status: store.SyncFailed,
			ErrorSummary: txt, StartedAt: time.Now(), FinishedAt: time.Now()})
	}
	for i := range outcomes { // one subscription: one stats delta per write
		if err := st.RecordOutcomesAndStats(ctx, outcomes[i:i+1], deltas[i:i+1]); err != nil {
			t.Fatalf("record outcome %d: %v", i, err)
		}
	}
	if err := st.RecordConnectorOutcomes(ctx, connectorOutcomes, runs); err != nil {
		t.Fatalf("record connector outcomes: %v", err)
	}
	for i, txt := range texts {
		want, changed := store.Text(txt)
		var body string
		var flagged bool
		if err := st.Pool().QueryRow(ctx, `SELECT response_body, response_body_sanitised FROM webhook_deliveries WHERE delivery_id = $1`,
			deliveries[i].ID).Scan(&body, &flagged); err != nil {
			t.Fatal(err)
		}
		if body != want || flagged != changed {
			t.Errorf("body %d stored as %q (flagged %v), want %q (flagged %v)", i, body, flagged, want, changed)
		}
		status, _, lastError, err := st.ConnectorDeliveryStatus(ctx, cfg.ID, deliveries[i].EventID)
		if err != nil || status != store.DeliveryDeadLettered || lastError != "marketplace: "+want {
			t.Errorf("connector outcome %d: %s %q %v", i, status, lastError, err)
		}
	}
	if logged, err := st.SyncRuns(ctx, cfg.ID, 100); err != nil || len(logged) != len(texts) {
		t.Fatalf("%d sync runs: %v", len(logged), err)
	}

	// A provider's webhook: stored once whatever it holds, replay deduplicated.
	docs := map[uuid.UUID]string{}
	for i, txt := range texts {
		doc := hostileDocs[i%len(hostileDocs)].doc
		e := store.InboundEvent{EventID: uuid.New(), ConfigID: cfg.ID, ProviderEventID: "evt_" + txt, EventType: "stripe." + txt,
			StoreID: "store-h", Payload: []byte(doc)}
		docs[e.EventID] = doc
		for replay := range 2 {
			inserted, err := st.InsertInboundEvent(ctx, e, time.Millisecond)
			if err != nil || inserted != (replay == 0) {
				t.Fatalf("inbound event %d (replay %d): inserted %v: %v", i, replay, inserted, err)
			}
		}
		if err := st.CountInboundRejected(ctx, cfg.ID, "rejected: "+txt); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond)
	relayed, err := st.ClaimUnpublishedInbound(ctx, 100, time.Minute)
	if err != nil || len(relayed) != len(texts) {
		t.Fatalf("claimed %d inbound events: %v", len(relayed), err)
	}
	for _, e := range relayed {
		if string(e.Payload) != docs[e.EventID] {
			t.Errorf("inbound payload %.40q comes back as %.40q", docs[e.EventID], e.Payload)
		}
	}

	// Kafka messages that could not be set aside on the poison topic.
	poison := []store.PoisonMessage{{Topic: "platform.events", Partition: 1, Offset: 7, Key: []byte("\x00"), Value: bytes.Repeat([]byte{0, 0xff}, 1<<20),
		Headers: []store.PoisonHeader{{Key: "ce_type\x00\xff", Value: []byte{0}}}, Reason: "event type is not printable \xff"}}
	for range 2 { // a replayed batch records it once
		if err := st.RecordPoison(ctx, poison); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var value []byte
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) OVER (), message_value FROM poison_messages LIMIT 1`).Scan(&n, &value); err != nil ||
		n != 1 || !bytes.Equal(value, poison[0].Value) {
		t.Fatalf("%d poison rows (value kept: %v): %v", n, bytes.Equal(value, poison[0].Value), err)
	}
}

func ptr[T any](v T) *T { return &v }
