package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/store"
)

// A replica that lost its claim (its lease lapsed and another replica took
// the delivery over) can neither overwrite the new holder's outcome, nor
// renew, nor release the claim; its outcome adds nothing to the stats and
// no notice to the outbox.
func TestOutcomesRenewalsAndReleasesAreFencedByClaim(t *testing.T) {
	st, ctx := hostileStore(t)
	sub := store.Subscription{ID: uuid.New(), StoreID: "store-c", Name: "c", TargetURL: "https://example.com/c", Events: []string{"order.*"},
		IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3, MaxConcurrency: 1}
	if _, err := st.UpsertSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	stale := store.NewClaim(50 * time.Millisecond)
	if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{{ID: id, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-c",
		EventType: "order.placed", Payload: []byte(`{}`)}}, stale); err != nil {
		t.Fatal(err)
	}
	// While held, nobody else claims it; renewed, it is still held.
	if due, err := st.ClaimDue(ctx, 10, time.Minute); err != nil || len(due) != 0 {
		t.Fatalf("claimed a held delivery: %v %v", due, err)
	}
	ok, err := st.RenewClaims(ctx, store.WebhookClaims, []store.Held{{ID: id, Token: stale.Token}}, 50*time.Millisecond)
	if err != nil || !ok[id] {
		t.Fatalf("renewal of a held claim: %v %v", ok, err)
	}
	time.Sleep(100 * time.Millisecond)
	taken, err := st.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(taken) != 1 || taken[0].ClaimToken == stale.Token {
		t.Fatalf("the lapsed claim was not taken over: %+v %v", taken, err)
	}

	// The new holder delivers; the old one's late "failed" must not land.
	notice := &store.Notice{ID: uuid.New(), Topic: "webhook.dead_lettered", Key: []byte("store-c"), Value: []byte(`{}`)}
	late := []store.Outcome{{DeliveryID: id, Status: store.DeliveryDeadLettered, Attempts: 5, ClaimToken: stale.Token, Notice: notice}}
	lateDeltas := func(fenced map[uuid.UUID]bool) []store.StatsDelta {
		if fenced[id] {
			return nil
		}
		return []store.StatsDelta{{SubscriptionID: sub.ID, DeadLettered: 1, FailedAttempts: 1, LastAttemptAt: time.Now(), LastError: "late"}}
	}
	current := []store.Outcome{{DeliveryID: id, Status: store.DeliveryDelivered, Attempts: 1, ClaimToken: taken[0].ClaimToken}}
	if fenced, err := st.RecordOutcomeBatch(ctx, current, func(map[uuid.UUID]bool) []store.StatsDelta {
		return []store.StatsDelta{{SubscriptionID: sub.ID, Delivered: 1, LastAttemptAt: time.Now()}}
	}, nil); err != nil || len(fenced) != 0 {
		t.Fatalf("the holder's outcome: fenced %v, %v", fenced, err)
	}
	fenced, err := st.RecordOutcomeBatch(ctx, late, lateDeltas, nil)
	if err != nil || !fenced[id] {
		t.Fatalf("the stale outcome was not fenced off: %v %v", fenced, err)
	}
	status, attempts, _, _, err := st.GetDelivery(ctx, id)
	if err != nil || status != store.DeliveryDelivered || attempts != 1 {
		t.Fatalf("delivery is %s after %d attempts (%v); the stale write landed", status, attempts, err)
	}
	stats, err := st.SubscriptionStatsAll(ctx)
	if s := stats[sub.ID]; err != nil || s.Delivered != 1 || s.DeadLettered != 0 || s.FailedAttempts != 0 {
		t.Fatalf("stats counted the stale outcome: %+v %v", s, err)
	}
	if n, err := st.PendingNotices(ctx); err != nil || n != 0 {
		t.Fatalf("%d notices for a fenced outcome (%v)", n, err)
	}

	// A stale release or renewal leaves the holder's claim alone.
	id2 := uuid.New()
	first := store.NewClaim(50 * time.Millisecond)
	if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{{ID: id2, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-c",
		EventType: "order.placed", Payload: []byte(`{}`)}}, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	second, err := st.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(second) != 1 {
		t.Fatalf("take-over: %v %v", second, err)
	}
	if ok, err := st.RenewClaims(ctx, store.WebhookClaims, []store.Held{{ID: id2, Token: first.Token}}, time.Minute); err != nil || ok[id2] {
		t.Fatalf("a lost claim was renewed: %v %v", ok, err)
	}
	if err := st.ReleaseClaims(ctx, store.WebhookClaims, []store.Held{{ID: id2, Token: first.Token}}); err != nil {
		t.Fatal(err)
	}
	if again, err := st.ClaimDue(ctx, 10, time.Minute); err != nil || len(again) != 0 {
		t.Fatalf("a stale release freed the new holder's claim: %v %v", again, err)
	}
	if err := st.ReleaseClaims(ctx, store.WebhookClaims, []store.Held{{ID: id2, Token: second[0].ClaimToken}}); err != nil {
		t.Fatal(err)
	}
	if again, err := st.ClaimDue(ctx, 10, time.Minute); err != nil || len(again) != 1 {
		t.Fatalf("the holder's release did not free it: %v %v", again, err)
	}
}

// One SKU's updates are claimed one at a time, oldest first, across
// claimants, so an older absolute quantity never reaches a marketplace
// after a newer one; other SKUs' events are not held up.
func TestConnectorEventsForOneEntityAreClaimedInArrivalOrder(t *testing.T) {
	st, ctx := hostileStore(t)
	cfg := activeConnector(t, st, "store-o", "ebay")
	var events []store.NewConnectorDelivery
	quantity := map[uuid.UUID]int{}
	for i := range 5 {
		for _, sku := range []string{"A", "B"} {
			data, _ := json.Marshal(map[string]any{"sku": sku, "quantity": i})
			d := store.NewConnectorDelivery{ID: uuid.New(), ConfigID: cfg.ID, EventID: uuid.New(), StoreID: "store-o",
				EventType: "inventory.updated", Payload: data, EntityKey: connectors.EntityKey("inventory.updated", data)}
			quantity[d.ID] = i
			events = append(events, d)
		}
	}
	// An event that names no entity has no order to wait for.
	free := store.NewConnectorDelivery{ID: uuid.New(), ConfigID: cfg.ID, EventID: uuid.New(), StoreID: "store-o",
		EventType: "product.updated", Payload: []byte(`{"title":"no sku"}`)}
	events = append(events, free)
	if err := st.InsertConnectorDeliveries(ctx, events); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		// Two claimants at once: between them, one event per SKU.
		a, err := st.ClaimConnectorDeliveries(ctx, 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		b, err := st.ClaimConnectorDeliveries(ctx, 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		claimed := append(a, b...)
		want := 2
		if round == 0 {
			want = 3 // and the event without an entity
		}
		if len(claimed) != want {
			t.Fatalf("round %d: %d claimed, want %d", round, len(claimed), want)
		}
		var outcomes []store.ConnectorOutcome
		for _, d := range claimed {
			if d.ID == free.ID {
				continue
			}
			if q := quantity[d.ID]; q != round {
				t.Fatalf("round %d: claimed the update to quantity %d first", round, q)
			}
			outcomes = append(outcomes, store.ConnectorOutcome{DeliveryID: d.ID, ConfigID: d.ConfigID, Status: store.DeliveryDelivered,
				Attempts: 1, Attempted: true, ClaimToken: d.ClaimToken})
		}
		if err := st.RecordConnectorOutcomes(ctx, outcomes, nil); err != nil {
			t.Fatal(err)
		}
	}
	if rest, err := st.ClaimConnectorDeliveries(ctx, 100, time.Minute); err != nil || len(rest) != 0 {
		t.Fatalf("left over: %d %v", len(rest), err)
	}
}

// A connector outcome written under a lost claim is not recorded or counted.
func TestConnectorOutcomesAreFencedByClaim(t *testing.T) {
	st, ctx := hostileStore(t)
	cfg := activeConnector(t, st, "store-f", "ebay")
	d := store.NewConnectorDelivery{ID: uuid.New(), ConfigID: cfg.ID, EventID: uuid.New(), StoreID: "store-f", EventType: "product.updated",
		Payload: []byte(`{"sku":"X"}`), EntityKey: "sku:X"}
	if err := st.InsertConnectorDeliveries(ctx, []store.NewConnectorDelivery{d}); err != nil {
		t.Fatal(err)
	}
	first, err := st.ClaimConnectorDeliveries(ctx, 10, 50*time.Millisecond)
	if err != nil || len(first) != 1 {
		t.Fatal(first, err)
	}
	time.Sleep(100 * time.Millisecond)
	second, err := st.ClaimConnectorDeliveries(ctx, 10, time.Minute)
	if err != nil || len(second) != 1 {
		t.Fatal(second, err)
	}
	record := func(c store.ConnectorDelivery, status string) {
		t.Helper()
		if err := st.RecordConnectorOutcomes(ctx, []store.ConnectorOutcome{{DeliveryID: c.ID, ConfigID: cfg.ID, Status: status,
			Attempts: 1, Attempted: true, ClaimToken: c.ClaimToken}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	record(second[0], store.DeliveryDelivered)
	record(first[0], store.DeliveryDeadLettered)
	status, _, _, err := st.ConnectorDeliveryStatus(ctx, cfg.ID, d.EventID)
	if err != nil || status != store.DeliveryDelivered {
		t.Fatalf("status %s (%v): the stale outcome landed", status, err)
	}
	var delivered, dead int
	if err := st.Pool().QueryRow(ctx, `SELECT outbound_delivered, outbound_dead_lettered FROM connector_stats WHERE config_id = $1`, cfg.ID).
		Scan(&delivered, &dead); err != nil || delivered != 1 || dead != 0 {
		t.Fatalf("stats delivered=%d dead=%d (%v)", delivered, dead, err)
	}
}

func TestEntityKeys(t *testing.T) {
	long := fmt.Sprintf("%0300d", 7)
	for _, c := range []struct{ typ, data, want string }{
		{"inventory.updated", `{"sku":"A-1","quantity":3}`, "sku:A-1"},
		{"product.updated", `{"sku":"A-1","title":"t"}`, "sku:A-1"},
		{"product.updated", `{"sku":42}`, "sku:42"},
		{"order.fulfilled", `{"orderId":"o-1","marketplaceOrderId":"amz-9"}`, "marketplace-order:amz-9"},
		{"order.fulfilled", `{"orderId":"o-1"}`, "order:o-1"},
		{"product.updated", `{"title":"no sku"}`, ""},
		{"customer.created", `{"sku":"A-1"}`, ""},
		{"product.updated", `not json`, ""},
		{"product.updated", `{"sku":""}`, ""},
		{"product.updated", `{"sku":"` + long + `"}`, "sku:sha256:"},
	} {
		got := connectors.EntityKey(c.typ, json.RawMessage(c.data))
		if c.want == "sku:sha256:" {
			if len(got) != len("sku:sha256:")+64 || got[:11] != c.want {
				t.Errorf("%s %s: %q, want a hashed key", c.typ, c.data[:20], got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%s %s: %q, want %q", c.typ, c.data, got, c.want)
		}
	}
}

// A poll run whose claim another replica took over can neither move the
// cursor nor schedule the next poll: the poll state is the new holder's.
func TestPollStateWritesAreFencedByClaim(t *testing.T) {
	st, ctx := hostileStore(t)
	cfg := store.ConnectorConfig{ID: uuid.New(), StoreID: "store-p", ConnectorType: "amazon", DisplayName: "p", IsActive: true,
		PollInterval: time.Minute}
	if _, err := st.UpsertConnectorConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	old, err := st.ClaimDuePolls(ctx, []string{"amazon"}, 10, 50*time.Millisecond)
	if err != nil || len(old) != 1 {
		t.Fatalf("first claim: %v %v", old, err)
	}
	time.Sleep(100 * time.Millisecond)
	current, err := st.ClaimDuePolls(ctx, []string{"amazon"}, 10, time.Minute)
	if err != nil || len(current) != 1 || current[0].ClaimToken == old[0].ClaimToken {
		t.Fatalf("take-over: %v %v", current, err)
	}
	if err := st.SavePollCursor(ctx, current[0], "new-holder", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.SavePollCursor(ctx, old[0], "stale", time.Minute); !errors.Is(err, store.ErrPollClaimLapsed) {
		t.Fatalf("a stale run saved its cursor: %v", err)
	}
	run := store.SyncRun{ConfigID: cfg.ID, Direction: store.SyncInbound, EntityType: "order", Status: store.SyncFailed}
	if err := st.FinishPoll(ctx, old[0], run, "stale-too", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	var cursor string
	var claimed bool
	if err := st.Pool().QueryRow(ctx, `SELECT poll_cursor, claimed_until > now() FROM connector_poll_state WHERE config_id = $1`, cfg.ID).
		Scan(&cursor, &claimed); err != nil || cursor != "new-holder" || !claimed {
		t.Fatalf("poll state cursor=%q claimed=%v (%v): the stale run wrote it", cursor, claimed, err)
	}
}
