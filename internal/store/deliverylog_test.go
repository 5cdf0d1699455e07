package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// logSubscription stores an active subscription of storeID.
func logSubscription(t testing.TB, st *store.Store, storeID string) uuid.UUID {
	t.Helper()
	sub := store.Subscription{ID: uuid.New(), StoreID: storeID, Name: "n", TargetURL: "https://example.com/hook", Events: []string{"*"},
		IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3}
	if _, err := st.UpsertSubscription(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	return sub.ID
}

// dayPartitions gives tables daily partitions for the days back to days ago.
func dayPartitions(t testing.TB, st *store.Store, days int, tables ...string) {
	t.Helper()
	for _, table := range tables {
		if _, err := st.Pool().Exec(context.Background(), `SELECT io_create_day_partitions($1, 'event_time', current_date - $2::int, current_date)`,
			table, days); err != nil {
			t.Fatal(err)
		}
	}
}

// newest orders ds as the delivery log does.
func newest(ds []store.LoggedDelivery) {
	slices.SortFunc(ds, func(a, b store.LoggedDelivery) int {
		if c := b.EventTime.Compare(a.EventTime); c != 0 {
			return c
		}
		return bytes.Compare(b.ID[:], a.ID[:])
	})
}

func ids(ds []store.LoggedDelivery) []uuid.UUID {
	out := make([]uuid.UUID, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestDeliveryLogListsNewestFirst(t *testing.T) {
	st, ctx := hostileStore(t)
	dayPartitions(t, st, 5, "webhook_deliveries", "event_payloads")
	a, b, idle := logSubscription(t, st, "store-a"), logSubscription(t, st, "store-b"), logSubscription(t, st, "store-c")
	midnight := time.Now().UTC().Truncate(24 * time.Hour)
	// Five a day over three days for a, two of each day at one instant (the
	// id breaks the tie); two a day for b.
	var news []store.NewDelivery
	for day := range 3 {
		for i := range 5 {
			at := midnight.AddDate(0, 0, -day).Add(time.Duration(min(i, 3)) * time.Hour)
			typ := "order.placed"
			if i%2 == 1 {
				typ = "order.paid"
			}
			news = append(news, store.NewDelivery{ID: store.NewID(), SubscriptionID: a, EventID: uuid.New(), StoreID: "store-a",
				EventType: typ, Payload: []byte(`{}`), EventTime: at})
			if i < 2 {
				news = append(news, store.NewDelivery{ID: store.NewID(), SubscriptionID: b, EventID: uuid.New(), StoreID: "store-b",
					EventType: "order.placed", Payload: []byte(`{}`), EventTime: at.Add(time.Minute)})
			}
		}
	}
	if _, err := st.InsertDeliveries(ctx, news, store.NewClaim(0)); err != nil {
		t.Fatal(err)
	}
	var partitions int
	if err := st.Pool().QueryRow(ctx, `SELECT count(DISTINCT tableoid) FROM webhook_deliveries WHERE subscription_id = $1`, a).Scan(&partitions); err != nil || partitions != 3 {
		t.Fatalf("a's rows are in %d partitions (%v), want 3", partitions, err)
	}
	// One of a's a dead letter, one delivered.
	dead, delivered := news[2].ID, news[5].ID
	if _, err := st.Pool().Exec(ctx, `UPDATE webhook_deliveries SET status = CASE WHEN delivery_id = $1 THEN 'DEAD_LETTERED' ELSE 'DELIVERED' END,
		http_status = 200, response_body = 'ok', delivered_at = now() WHERE delivery_id IN ($1, $2)`, dead, delivered); err != nil {
		t.Fatal(err)
	}

	all, err := st.ListWebhookDeliveries(ctx, store.DeliveryFilter{Owners: []uuid.UUID{a}, Limit: 100})
	if err != nil || len(all) != 15 {
		t.Fatalf("listed %d of a's 15 (%v)", len(all), err)
	}
	want := slices.Clone(all)
	newest(want)
	if !slices.Equal(ids(all), ids(want)) {
		t.Fatalf("not newest first (event_time, then id, descending): %v", all)
	}
	for _, d := range all {
		if d.OwnerID != a || d.StoreID != "store-a" || d.Status == "" || d.CreatedAt.IsZero() || d.EntityKey != nil {
			t.Errorf("row %+v", d)
		}
		if d.ID == delivered && (d.Status != store.DeliveryDelivered || d.HTTPStatus == nil || *d.HTTPStatus != 200 ||
			d.ResponseBody == nil || *d.ResponseBody != "ok" || d.DeliveredAt == nil) {
			t.Errorf("the delivered row: %+v", d)
		}
	}

	// Pages of four: across a page boundary between rows of one instant,
	// and across days.
	var paged []store.LoggedDelivery
	f := store.DeliveryFilter{Owners: []uuid.UUID{a}, Limit: 4}
	for {
		page, err := st.ListWebhookDeliveries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < f.Limit {
			break
		}
		c := page[len(page)-1].Cursor()
		f.After = &c
	}
	if !slices.Equal(ids(paged), ids(all)) {
		t.Errorf("pages of four give %d rows, not the list: %v", len(paged), ids(paged))
	}

	check := func(name string, f store.DeliveryFilter, keep func(store.LoggedDelivery) bool) {
		t.Helper()
		got, err := st.ListWebhookDeliveries(ctx, f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want []store.LoggedDelivery
		for _, d := range all {
			if keep(d) {
				want = append(want, d)
			}
		}
		if !slices.Equal(ids(got), ids(want)) {
			t.Errorf("%s: %d rows %v, want %d %v", name, len(got), ids(got), len(want), ids(want))
		}
	}
	check("dead letters", store.DeliveryFilter{Owners: []uuid.UUID{a}, Status: store.DeliveryDeadLettered, Limit: 10},
		func(d store.LoggedDelivery) bool { return d.ID == dead })
	check("pending", store.DeliveryFilter{Owners: []uuid.UUID{a}, Status: store.DeliveryPending, Limit: 100},
		func(d store.LoggedDelivery) bool { return d.ID != dead && d.ID != delivered })
	check("one event type", store.DeliveryFilter{Owners: []uuid.UUID{a}, EventType: "order.paid", Limit: 100},
		func(d store.LoggedDelivery) bool { return d.EventType == "order.paid" })
	since, until := midnight.AddDate(0, 0, -1), midnight.Add(time.Hour)
	check("[yesterday, today 01:00)", store.DeliveryFilter{Owners: []uuid.UUID{a}, Since: &since, Until: &until, Limit: 100},
		func(d store.LoggedDelivery) bool { return !d.EventTime.Before(since) && d.EventTime.Before(until) })
	cursor := all[6].Cursor()
	check("after the seventh, paid", store.DeliveryFilter{Owners: []uuid.UUID{a}, EventType: "order.paid", After: &cursor, Limit: 100},
		func(d store.LoggedDelivery) bool {
			return d.EventType == "order.paid" && slices.Index(ids(all), d.ID) > 6
		})

	// Several owners: one merged list, each owner once however often named.
	both, err := st.ListWebhookDeliveries(ctx, store.DeliveryFilter{Owners: []uuid.UUID{b, a, idle, b}, Limit: 100})
	if err != nil || len(both) != 21 {
		t.Fatalf("a's and b's: %d rows (%v), want 21", len(both), err)
	}
	want = slices.Clone(both)
	newest(want)
	if !slices.Equal(ids(both), ids(want)) {
		t.Errorf("a's and b's are not merged newest first")
	}
	firstFive, err := st.ListWebhookDeliveries(ctx, store.DeliveryFilter{Owners: []uuid.UUID{a, b}, Limit: 5})
	if err != nil || !slices.Equal(ids(firstFive), ids(both[:5])) {
		t.Errorf("the newest five of a and b: %v (%v), want %v", ids(firstFive), err, ids(both[:5]))
	}

	for name, f := range map[string]store.DeliveryFilter{
		"an owner without deliveries": {Owners: []uuid.UUID{idle}, Limit: 10},
		"an unknown owner":            {Owners: []uuid.UUID{uuid.New()}, Limit: 10},
		"no owners":                   {Limit: 10},
	} {
		if got, err := st.ListWebhookDeliveries(ctx, f); err != nil || len(got) != 0 {
			t.Errorf("%s: %v, %v; want nothing", name, got, err)
		}
	}
	for name, f := range map[string]store.DeliveryFilter{
		"no limit":       {Owners: []uuid.UUID{a}},
		"unknown status": {Owners: []uuid.UUID{a}, Status: "LOST", Limit: 10},
	} {
		if _, err := st.ListWebhookDeliveries(ctx, f); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDeliveryLogCapsItsPages(t *testing.T) {
	st, ctx := hostileStore(t)
	sub := logSubscription(t, st, "store-a")
	news := make([]store.NewDelivery, store.MaxDeliveryPage+10)
	for i := range news {
		news[i] = store.NewDelivery{ID: store.NewID(), SubscriptionID: sub, EventID: uuid.New(), StoreID: "store-a", EventType: "order.placed",
			Payload: []byte(`{}`), EventTime: time.Now()}
	}
	if _, err := st.InsertDeliveries(ctx, news, store.NewClaim(0)); err != nil {
		t.Fatal(err)
	}
	got, err := st.ListWebhookDeliveries(ctx, store.DeliveryFilter{Owners: []uuid.UUID{sub}, Limit: 5000})
	if err != nil || len(got) != store.MaxDeliveryPage {
		t.Fatalf("asked for 5000 of %d: got %d (%v), want the cap, %d", len(news), len(got), err, store.MaxDeliveryPage)
	}
}

// A delivery read by its id alone comes with its payload's bytes as they
// were stored, jsonb or not; an unknown id is not found, without error.
func TestDeliveryLogReadsOneWithItsPayload(t *testing.T) {
	st, ctx := hostileStore(t)
	sub := logSubscription(t, st, "store-h")
	cfg := activeConnector(t, st, "store-h", "ebay")
	for _, h := range hostileDocs {
		event, at := uuid.New(), time.Now().Add(-time.Hour)
		d := store.NewDelivery{ID: store.NewID(), SubscriptionID: sub, EventID: event, StoreID: "store-h", EventType: "order.placed",
			Payload: []byte(h.doc), EventTime: at}
		c := store.NewConnectorDelivery{ID: store.NewID(), ConfigID: cfg.ID, EventID: event, StoreID: "store-h", EventType: "order.placed",
			Payload: []byte(h.doc), EntityKey: "sku:" + h.name, EventTime: at}
		if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{d}, store.NewClaim(0)); err != nil {
			t.Fatal(err)
		}
		if err := st.InsertConnectorDeliveries(ctx, []store.NewConnectorDelivery{c}); err != nil {
			t.Fatal(err)
		}
		got, payload, found, err := st.WebhookDelivery(ctx, d.ID)
		if err != nil || !found || !bytes.Equal(payload, []byte(h.doc)) {
			t.Errorf("%s: found %v (%v), payload equal: %v", h.name, found, err, bytes.Equal(payload, []byte(h.doc)))
		}
		if got.ID != d.ID || got.OwnerID != sub || got.EventID != event || got.Status != store.DeliveryPending || !got.EventTime.Equal(store.PartitionTime(at)) {
			t.Errorf("%s: %+v", h.name, got)
		}
		gotC, payload, found, err := st.ConnectorDelivery(ctx, c.ID)
		if err != nil || !found || !bytes.Equal(payload, []byte(h.doc)) {
			t.Errorf("%s (connector): found %v (%v), payload equal: %v", h.name, found, err, bytes.Equal(payload, []byte(h.doc)))
		}
		if gotC.OwnerID != cfg.ID || gotC.EntityKey == nil || *gotC.EntityKey != "sku:"+h.name || gotC.HTTPStatus != nil {
			t.Errorf("%s (connector): %+v", h.name, gotC)
		}
	}
	if _, _, found, err := st.WebhookDelivery(ctx, uuid.New()); found || err != nil {
		t.Errorf("an unknown id: found %v, %v", found, err)
	}
	if _, _, found, err := st.ConnectorDelivery(ctx, uuid.New()); found || err != nil {
		t.Errorf("an unknown connector delivery id: found %v, %v", found, err)
	}
}

// A watch sees a delivery once an attempt of it is recorded, with the row
// as the attempt left it, and not before, nor for another owner.
func TestDeliveryLogChangedSinceSeesRecordedAttempts(t *testing.T) {
	st, ctx := hostileStore(t)
	a, b := logSubscription(t, st, "store-a"), logSubscription(t, st, "store-b")
	var news []store.NewDelivery
	for _, sub := range []uuid.UUID{a, a, b} {
		news = append(news, store.NewDelivery{ID: store.NewID(), SubscriptionID: sub, EventID: uuid.New(), StoreID: "s",
			EventType: "order.placed", Payload: []byte(`{}`), EventTime: time.Now()})
	}
	if _, err := st.InsertDeliveries(ctx, news, store.NewClaim(0)); err != nil {
		t.Fatal(err)
	}
	since, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.WebhookDeliveriesChangedSince(ctx, []uuid.UUID{a, b}, since, 100); err != nil || len(got) != 0 {
		t.Fatalf("before any attempt: %v, %v", got, err)
	}
	claimed, err := st.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	var outcomes []store.Outcome
	for _, c := range claimed {
		o := store.Outcome{DeliveryID: c.ID, EventTime: c.EventTime, Status: store.DeliveryDelivered, Attempts: 1, HTTPStatus: ptr(204),
			ClaimToken: c.ClaimToken, Attempt: &store.Attempt{StartedAt: time.Now(), Replica: "dispatcher-0"}}
		if c.ID == news[1].ID {
			o.Attempt = nil // not attempted: no change to see
			o.Status, o.HTTPStatus, o.RetryIn = store.DeliveryPending, nil, ptr(time.Hour)
		}
		outcomes = append(outcomes, o)
	}
	if _, err := st.RecordOutcomes(ctx, outcomes); err != nil {
		t.Fatal(err)
	}
	got, err := st.WebhookDeliveriesChangedSince(ctx, []uuid.UUID{a}, since, 100)
	if err != nil || len(got) != 1 {
		t.Fatalf("a's changes: %+v (%v), want the attempted one", got, err)
	}
	if d := got[0]; d.ID != news[0].ID || d.Status != store.DeliveryDelivered || d.Attempts != 1 || d.HTTPStatus == nil || *d.HTTPStatus != 204 ||
		d.ChangedAt.Before(since) {
		t.Errorf("a's change: %+v", d)
	}
	if got, err := st.WebhookDeliveriesChangedSince(ctx, []uuid.UUID{b}, since, 100); err != nil || len(got) != 1 || got[0].ID != news[2].ID {
		t.Errorf("b's changes: %+v (%v)", got, err)
	}
	if got, err := st.WebhookDeliveriesChangedSince(ctx, []uuid.UUID{uuid.New()}, since, 100); err != nil || len(got) != 0 {
		t.Errorf("another owner's changes: %+v (%v)", got, err)
	}
	// Oldest change first, at most limit.
	if got, err := st.WebhookDeliveriesChangedSince(ctx, []uuid.UUID{a, b}, since, 1); err != nil || len(got) != 1 {
		t.Errorf("limit 1: %+v (%v)", got, err)
	}
	later, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.WebhookDeliveriesChangedSince(ctx, []uuid.UUID{a, b}, later, 100); err != nil || len(got) != 0 {
		t.Errorf("since after the attempts: %+v (%v)", got, err)
	}
}

// A test delivery is due at once, unclaimed: the next claim takes it, with
// the payload it was given (stored as any payload is, jsonb or not), or
// with a ping.
func TestTestDeliveryIsClaimedWithItsPayload(t *testing.T) {
	st, ctx := hostileStore(t)
	sub := logSubscription(t, st, "store-t")
	doc := []byte(`{"note":"a\u0000b", "n": 1}`)
	id, at, err := st.InsertTestDelivery(ctx, sub, "store-t", "order.placed", doc)
	if err != nil {
		t.Fatal(err)
	}
	ping, _, err := st.InsertTestDelivery(ctx, sub, "store-t", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := st.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %d (%v), want both test deliveries", len(claimed), err)
	}
	byID := map[uuid.UUID]store.Delivery{}
	for _, c := range claimed {
		byID[c.ID] = c
	}
	if c := byID[id]; !bytes.Equal(c.Payload, doc) || c.EventType != "order.placed" || c.StoreID != "store-t" || c.SubscriptionID != sub ||
		!c.EventTime.Equal(at) || c.Attempts != 0 || c.EventID == uuid.Nil {
		t.Errorf("the test delivery, claimed: %+v", c)
	}
	var envelope struct {
		EventID   uuid.UUID `json:"eventId"`
		EventType string    `json:"eventType"`
		StoreID   string    `json:"storeId"`
	}
	c := byID[ping]
	if err := json.Unmarshal(c.Payload, &envelope); err != nil || c.EventType != store.TestEventType || envelope.EventType != store.TestEventType ||
		envelope.EventID != c.EventID || envelope.StoreID != "store-t" {
		t.Errorf("the ping, claimed: %+v, payload %s (%v)", c, c.Payload, err)
	}
	if id.Version() != 7 || c.EventID.Version() != 7 {
		t.Errorf("ids %s, %s: want UUIDv7s", id, c.EventID)
	}

	var payloads int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM event_payloads`).Scan(&payloads); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.InsertTestDelivery(ctx, uuid.New(), "store-t", "", nil); !errors.Is(err, store.ErrSubscriptionNotFound) {
		t.Errorf("for an unknown subscription: %v", err)
	}
	var after int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM event_payloads`).Scan(&after); err != nil || after != payloads {
		t.Errorf("%d payloads after the refused test delivery (%v), want %d", after, err, payloads)
	}
}

func TestConnectorDeliveryLog(t *testing.T) {
	st, ctx := hostileStore(t)
	dayPartitions(t, st, 3, "connector_deliveries", "event_payloads", "connector_delivery_attempts")
	cfg, other := activeConnector(t, st, "store-a", "ebay"), activeConnector(t, st, "store-b", "amazon")
	midnight := time.Now().UTC().Truncate(24 * time.Hour)
	var news []store.NewConnectorDelivery
	for i := range 6 {
		owner := cfg.ID
		if i == 5 {
			owner = other.ID
		}
		news = append(news, store.NewConnectorDelivery{ID: store.NewID(), ConfigID: owner, EventID: uuid.New(), StoreID: "s",
			EventType: "inventory.updated", Payload: fmt.Appendf(nil, `{"sku":"%d"}`, i), EntityKey: fmt.Sprint("sku:", i),
			EventTime: midnight.AddDate(0, 0, -i%3).Add(time.Duration(i) * time.Minute)})
	}
	if err := st.InsertConnectorDeliveries(ctx, news); err != nil {
		t.Fatal(err)
	}
	all, err := st.ListConnectorDeliveries(ctx, store.DeliveryFilter{Owners: []uuid.UUID{cfg.ID}, Limit: 100})
	if err != nil || len(all) != 5 {
		t.Fatalf("listed %d of 5 (%v)", len(all), err)
	}
	want := slices.Clone(all)
	newest(want)
	if !slices.Equal(ids(all), ids(want)) {
		t.Errorf("not newest first")
	}
	f := store.DeliveryFilter{Owners: []uuid.UUID{cfg.ID}, Limit: 2}
	var paged []store.LoggedDelivery
	for {
		page, err := st.ListConnectorDeliveries(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if paged = append(paged, page...); len(page) < f.Limit {
			break
		}
		c := page[len(page)-1].Cursor()
		f.After = &c
	}
	if !slices.Equal(ids(paged), ids(all)) {
		t.Errorf("pages of two: %v, want %v", ids(paged), ids(all))
	}
	if _, payload, found, err := st.ConnectorDelivery(ctx, news[3].ID); err != nil || !found || string(payload) != `{"sku":"3"}` {
		t.Errorf("one by id: %q, %v, %v", payload, found, err)
	}

	since, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := st.ClaimConnectorDeliveries(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 6 {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	var outcomes []store.ConnectorOutcome
	for _, c := range claimed {
		outcomes = append(outcomes, store.ConnectorOutcome{DeliveryID: c.ID, EventTime: c.EventTime, ConfigID: c.ConfigID,
			Status: store.DeliveryDeadLettered, Attempts: 1, Error: "refused", Attempted: true, ClaimToken: c.ClaimToken,
			Attempt: &store.ConnectorAttempt{Attempt: store.Attempt{StartedAt: time.Now(), Replica: "dispatcher-0"}}})
	}
	if err := st.RecordConnectorOutcomes(ctx, outcomes, nil); err != nil {
		t.Fatal(err)
	}
	changed, err := st.ConnectorDeliveriesChangedSince(ctx, []uuid.UUID{cfg.ID}, since, 100)
	if err != nil || len(changed) != 5 {
		t.Fatalf("changed: %d (%v), want 5", len(changed), err)
	}
	for _, d := range changed {
		if d.OwnerID != cfg.ID || d.Status != store.DeliveryDeadLettered || d.LastError == nil || *d.LastError != "refused" {
			t.Errorf("changed: %+v", d)
		}
	}
	dead, err := st.ListConnectorDeliveries(ctx, store.DeliveryFilter{Owners: []uuid.UUID{cfg.ID, other.ID}, Status: store.DeliveryDeadLettered, Limit: 100})
	if err != nil || len(dead) != 6 {
		t.Errorf("dead letters of both: %d (%v), want 6", len(dead), err)
	}
	d := changed[0]
	if attempts, err := st.ConnectorDeliveryAttempts(ctx, d.ID, d.EventTime); err != nil || len(attempts) != 1 ||
		attempts[0].Status != store.DeliveryDeadLettered {
		t.Errorf("attempts of %s: %+v (%v)", d.ID, attempts, err)
	}
}

// Adding recorded_at to the attempts rewrites none of their partitions
// (the default is stable, so it is kept in the catalogue), and attempts
// recorded before the upgrade read as recorded at the upgrade.
func TestDeliveryLogMigrationRewritesNoAttempts(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	db, provider := migratedTo(t, bed, 23)
	if _, err := db.ExecContext(ctx, `INSERT INTO webhook_delivery_attempts (delivery_id, event_time, attempt_number, started_at, duration_ms, replica)
		VALUES ($1, now(), 1, now(), 5, 'r')`, uuid.New()); err != nil {
		t.Fatal(err)
	}
	files := func() map[string]int64 {
		rows, err := db.QueryContext(ctx, `SELECT c.relname, c.relfilenode FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent IN ('webhook_delivery_attempts'::regclass, 'connector_delivery_attempts'::regclass)`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var name string
			var node int64
			if err := rows.Scan(&name, &node); err != nil {
				t.Fatal(err)
			}
			out[name] = node
		}
		return out
	}
	before := files()
	if len(before) == 0 {
		t.Fatal("no attempt partitions")
	}
	if _, err := provider.UpTo(ctx, 24); err != nil {
		t.Fatal(err)
	}
	after := files()
	for name, node := range before {
		if after[name] != node {
			t.Errorf("%s was rewritten (relfilenode %d, now %d)", name, node, after[name])
		}
	}
	var unset int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM webhook_delivery_attempts WHERE recorded_at IS NULL`).Scan(&unset); err != nil || unset != 0 {
		t.Errorf("%d attempts without recorded_at (%v)", unset, err)
	}
	// And back down, and up again.
	if _, err := provider.DownTo(ctx, 23); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

var _ = stdlib.GetDefaultDriver // registers the pgx driver goose opens
