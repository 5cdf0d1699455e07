package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// An upgrade from the unpartitioned schema (00014) keeps every row of the
// four history tables, each still readable, deliverable with the bytes it
// had, and still deduplicated.
func TestUpgradeToPartitionedHistoryKeepsEveryRow(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	db, _ := migratedTo(t, bed, 14)
	sub, cfg := uuid.New(), uuid.New()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO webhook_subscriptions (subscription_id, store_id, name, target_url, events) VALUES ($1, 's', 'n', 'https://example.com', '{order.*}')`, sub)
	exec(`INSERT INTO connector_configs (config_id, store_id, connector_type, display_name) VALUES ($1, 's', 'ebay', 'n')`, cfg)
	// Rows of today, of a week ago and of a year ago; with and without
	// raw bytes (rows from before 00007 have none).
	type old struct {
		id, event uuid.UUID
		raw       []byte
		jsonb     string
		pending   bool
	}
	var olds []old
	for i, age := range []string{"0", "7 days", "365 days"} {
		for _, raw := range [][]byte{[]byte(`{"n": 1,  "spaced":true}`), nil} {
			o := old{id: uuid.New(), event: uuid.New(), raw: raw, jsonb: `{"n": 1, "spaced": true}`, pending: i == 2 && raw == nil}
			status := "DELIVERED"
			if o.pending {
				status = "PENDING"
			}
			exec(`INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, event_payload, raw_payload, status,
				next_retry_at, created_at) VALUES ($1, $2, 's', 'order.placed', $3, $4, $5, $6, now(), now() - $7::interval)`,
				o.id, sub, o.event, o.jsonb, o.raw, status, age)
			exec(`INSERT INTO connector_deliveries (delivery_id, config_id, store_id, event_type, event_id, event_payload, raw_payload, status,
				next_retry_at, created_at) VALUES ($1, $2, 's', 'order.placed', $3, $4, $5, $6, now(), now() - $7::interval)`,
				o.id, cfg, o.event, o.jsonb, o.raw, status, age)
			olds = append(olds, o)
		}
		exec(`INSERT INTO connector_sync_log (config_id, direction, entity_type, status, started_at) VALUES ($1, 'INBOUND', 'poll', 'SUCCEEDED', now() - $2::interval)`, cfg, age)
		exec(`INSERT INTO connector_inbound_events (event_id, config_id, provider_event_id, event_type, store_id, payload, status, received_at)
			VALUES ($1, $2, $3, 'payment.succeeded', 's', '{}', 'PUBLISHED', now() - $4::interval)`, uuid.New(), cfg, "evt_"+age, age)
	}

	if _, err := store.Migrate(ctx, bed.DatabaseURL); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	st := bed.Store(t)
	for table, want := range map[string]int{"webhook_deliveries": 6, "connector_deliveries": 6, "connector_sync_log": 3, "connector_inbound_events": 3} {
		var n, inDefault int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE tableoid::regclass::text LIKE '%_default') FROM `+table).Scan(&n, &inDefault); err != nil {
			t.Fatal(err)
		}
		if n != want || inDefault != 0 {
			t.Errorf("%s: %d rows (%d in the default partition) after the upgrade, want %d in daily partitions", table, n, inDefault, want)
		}
	}
	for _, o := range olds {
		var payload []byte
		err := st.Pool().QueryRow(ctx, `SELECT p.raw_payload FROM webhook_deliveries d JOIN event_payloads p USING (payload_digest, event_time)
			WHERE d.delivery_id = $1`, o.id).Scan(&payload)
		want := string(o.raw)
		if o.raw == nil {
			want = o.jsonb // what was sent from the jsonb before
		}
		if err != nil || string(payload) != want {
			t.Errorf("delivery %s: payload %q (%v), want %q", o.id, payload, err, want)
		}
	}
	// The year-old pending delivery is still deliverable, with its bytes.
	claimed, err := st.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 1 || string(claimed[0].Payload) != `{"n": 1, "spaced": true}` {
		t.Fatalf("claimed %+v (%v), want the pending delivery with its payload", claimed, err)
	}
	if _, err := st.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: claimed[0].ID, EventTime: claimed[0].EventTime, Status: store.DeliveryDelivered,
		Attempts: 1, ClaimToken: claimed[0].ClaimToken}}); err != nil {
		t.Fatal(err)
	}
	if status, _, _, _, err := st.GetDelivery(ctx, claimed[0].ID); err != nil || status != store.DeliveryDelivered {
		t.Fatalf("after its outcome: %s, %v", status, err)
	}
	var syncID int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO connector_sync_log (config_id, direction, entity_type, status) VALUES ($1, 'INBOUND', 'poll', 'RUNNING')
		RETURNING sync_id`, cfg).Scan(&syncID); err != nil || syncID != 4 {
		t.Fatalf("a new sync run got id %d (%v), want 4: the identity continues", syncID, err)
	}
	// A redelivered event finds the row it had: keyed by the time the
	// upgrade gave it, created_at (events written since carry their own).
	inserted, err := st.InsertDeliveries(ctx, []store.NewDelivery{{ID: store.NewID(), SubscriptionID: sub, EventID: claimed[0].EventID,
		StoreID: "s", EventType: "order.placed", Payload: []byte(`{}`), EventTime: claimed[0].EventTime}}, store.NewClaim(time.Minute))
	if err != nil || len(inserted) != 0 {
		t.Fatalf("re-sent event inserted %v (%v), want none", inserted, err)
	}
	// A provider webhook seen before the upgrade is still a duplicate.
	ok, err := st.InsertInboundEvent(ctx, store.InboundEvent{EventID: uuid.New(), ConfigID: cfg, ProviderEventID: "evt_7 days",
		EventType: "payment.succeeded", StoreID: "s", Payload: []byte(`{}`)}, time.Minute)
	if err != nil || ok {
		t.Fatalf("a provider event stored before the upgrade was stored again: %v, %v", ok, err)
	}
}

func TestDedupIsExactForReSentEventsAndHostileTimes(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	st := bed.Store(t)
	sub := store.Subscription{ID: uuid.New(), StoreID: "s", Name: "n", TargetURL: "https://example.com/hook", Events: []string{"order.*"},
		IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3}
	if _, err := st.UpsertSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	times := map[string]time.Time{
		"now":               time.Now(),
		"nanoseconds":       time.Date(2026, 3, 1, 23, 59, 59, 999999999, time.FixedZone("x", 3600)),
		"far past":          time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		"far future":        time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		"beyond postgres":   time.Unix(1<<62, 0),
		"zero":              {},
		"before the common": time.Date(-500, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for name, at := range times {
		event := uuid.New()
		first := store.NewID()
		ins, err := st.InsertDeliveries(ctx, []store.NewDelivery{{ID: first, SubscriptionID: sub.ID, EventID: event, StoreID: "s",
			EventType: "order.placed", Payload: []byte(`{"x":1}`), EventTime: at}}, store.NewClaim(0))
		if err != nil || len(ins) != 1 {
			t.Fatalf("%s: first insert %v, %v", name, ins, err)
		}
		// Re-sent: another delivery id, the same event and time.
		again, err := st.InsertDeliveries(ctx, []store.NewDelivery{{ID: store.NewID(), SubscriptionID: sub.ID, EventID: event, StoreID: "s",
			EventType: "order.placed", Payload: []byte(`{"x":1}`), EventTime: at}}, store.NewClaim(0))
		if err != nil || len(again) != 0 {
			t.Errorf("%s: the re-sent event inserted %v (%v), want none", name, again, err)
		}
		if status, _, _, _, err := st.GetDelivery(ctx, first); err != nil || status != store.DeliveryPending {
			t.Errorf("%s: delivery %s, %v; want it kept, pending", name, status, err)
		}
	}
	claimed, err := st.ClaimDue(ctx, 100, time.Minute)
	if err != nil || len(claimed) != len(times) {
		t.Fatalf("claimed %d of %d (%v)", len(claimed), len(times), err)
	}
	outcomes := make([]store.Outcome, len(claimed))
	for i, c := range claimed {
		if string(c.Payload) != `{"x":1}` {
			t.Errorf("payload %q", c.Payload)
		}
		outcomes[i] = store.Outcome{DeliveryID: c.ID, EventTime: c.EventTime, Status: store.DeliveryDelivered, Attempts: 1, ClaimToken: c.ClaimToken}
	}
	stale, err := st.RecordOutcomes(ctx, outcomes)
	if err != nil || len(stale) != 0 {
		t.Fatalf("outcomes: %d stale, %v; want every one written under its key", len(stale), err)
	}
	// Fan-out stores the payload once.
	var payloads int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM event_payloads`).Scan(&payloads); err != nil || payloads != len(times)-2 {
		// "far past", "zero" and "before the common" clamp to one instant.
		t.Errorf("%d payload rows (%v), want %d", payloads, err, len(times)-2)
	}
}

// Providers retry for days: a provider event stored on one day is a
// duplicate on the next, though that is another partition.
func TestInboundDedupHoldsAcrossADayBoundary(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	st := bed.Store(t)
	cfg := uuid.New()
	if _, err := st.Pool().Exec(ctx, `INSERT INTO connector_configs (config_id, store_id, connector_type, display_name) VALUES ($1, 's', 'stripe', 'n')`, cfg); err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC()
	midnight := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	at := []time.Time{midnight.Add(-time.Microsecond), midnight, midnight.AddDate(0, 0, 2), midnight.AddDate(0, 0, 30)}
	for i, received := range at {
		ok, err := st.InsertInboundEvent(ctx, store.InboundEvent{EventID: uuid.New(), ConfigID: cfg, ProviderEventID: "evt_1",
			EventType: "payment.succeeded", StoreID: "s", Payload: []byte(`{}`), ReceivedAt: received}, time.Minute)
		if err != nil || ok != (i == 0) {
			t.Errorf("received at %v: inserted %v (%v), want %v", received, ok, err, i == 0)
		}
	}
	var stored, partitions int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT tableoid) FROM connector_inbound_events`).Scan(&stored, &partitions); err != nil || stored != 1 {
		t.Fatalf("%d stored (%v), want 1", stored, err)
	}
	// Concurrent retries of one new event store it once.
	results := make(chan bool, 8)
	for range 8 {
		go func() {
			ok, err := st.InsertInboundEvent(ctx, store.InboundEvent{EventID: uuid.New(), ConfigID: cfg, ProviderEventID: "evt_2",
				EventType: "payment.succeeded", StoreID: "s", Payload: []byte(`{}`), ReceivedAt: time.Now()}, time.Minute)
			results <- ok && err == nil
		}()
	}
	accepted := 0
	for range 8 {
		if <-results {
			accepted++
		}
	}
	if accepted != 1 {
		t.Errorf("%d of 8 concurrent retries stored, want 1", accepted)
	}
}

var _ = stdlib.GetDefaultDriver // registers the pgx driver goose opens

// migratedTo migrates the bed's database up to version, for upgrade tests;
// the rest is migrated with the provider it returns.
func migratedTo(t *testing.T, bed *testbed.Bed, version int64) (*sql.DB, *goose.Provider) {
	t.Helper()
	db, err := goose.OpenDBWithDriver("pgx", bed.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	provider, err := goose.NewProvider(goose.DialectPostgres, db, store.Migrations())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.UpTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	return db, provider
}
