package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// A change committed after the version was read moves it, even when its
// transaction began before the change the reader saw (so its updated_at is
// older): the routing index cannot miss it.
func TestRoutingVersionMissesNoCommittedChange(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	st := bed.Store(t)
	ctx := context.Background()
	subs := make([]store.Subscription, 2)
	for i := range subs {
		subs[i] = store.Subscription{ID: uuid.New(), StoreID: "store-r", Name: "r", TargetURL: "https://example.com/r", Events: []string{"order.*"},
			IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3, MaxConcurrency: 1}
		if _, err := st.UpsertSubscription(ctx, subs[i]); err != nil {
			t.Fatal(err)
		}
	}
	// The slow transaction begins first (its now() is fixed from here)...
	slow, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = slow.Rollback(ctx) }()
	if _, err := slow.Exec(ctx, `SELECT now()`); err != nil {
		t.Fatal(err)
	}
	// ...another commits a change to subscription 1 meanwhile, and a
	// dispatcher reads the version...
	time.Sleep(10 * time.Millisecond)
	subs[1].TargetURL = "https://example.com/moved"
	if _, err := st.UpsertSubscription(ctx, subs[1]); err != nil {
		t.Fatal(err)
	}
	seen, err := st.RoutingVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// ...then the slow one deactivates subscription 0, stamped with its
	// older now(), and commits.
	if _, err := slow.Exec(ctx, `UPDATE webhook_subscriptions SET is_active = false, updated_at = now() WHERE subscription_id = $1`, subs[0].ID); err != nil {
		t.Fatal(err)
	}
	// ...then the slow one commits.
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	now, err := st.RoutingVersion(ctx)
	if err != nil || now == seen {
		t.Fatalf("version %q before and %q after a committed deactivation (%v)", seen, now, err)
	}
	// A write that changes nothing leaves it alone.
	if _, err := st.UpsertSubscription(ctx, subs[1]); err != nil {
		t.Fatal(err)
	}
	if again, err := st.RoutingVersion(ctx); err != nil || again != now {
		t.Fatalf("an unchanged upsert moved the version from %q to %q (%v)", now, again, err)
	}
}
