package main

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

func TestRetriggerCommandRequeuesOneDeadLetter(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	st := bed.Store(t)
	sub := store.Subscription{ID: uuid.New(), StoreID: "s", Name: "n", TargetURL: "https://example.com", Events: []string{"order.placed"}, IsActive: true}
	if _, err := st.UpsertSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	dead, live := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{dead, live} {
		if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{{ID: id, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "s",
			EventType: "order.placed", Payload: []byte(`{}`)}}, store.NewClaim(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: dead, Status: store.DeliveryDeadLettered, Attempts: 5}}); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(append([]string{"retrigger", "--database-url", bed.DatabaseURL}, args...))
		err := root.ExecuteContext(ctx)
		return out.String(), err
	}
	if out, err := run("--delivery-id", dead.String()); err != nil || !strings.Contains(out, "re-queued delivery "+dead.String()) {
		t.Fatalf("%q %v", out, err)
	}
	status, attempts, _, next, err := st.GetDelivery(ctx, dead)
	if err != nil || status != store.DeliveryPending || attempts != 0 || next == nil {
		t.Fatalf("after re-trigger: %s %d %v %v", status, attempts, next, err)
	}
	if _, err := run("--delivery-id", live.String()); err == nil || !strings.Contains(err.Error(), "not dead-lettered") {
		t.Fatalf("re-triggering a live delivery: %v", err)
	}
	if _, err := run("--delivery-id", "nope"); err == nil {
		t.Fatal("a malformed id was accepted")
	}
}
