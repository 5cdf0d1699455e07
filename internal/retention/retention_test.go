package retention_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ss3dev/integration-operator/internal/retention"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

func TestPartitionsAreCreatedAheadAndDroppedAfterRetentionUnlessUnfinished(t *testing.T) {
	ctx := context.Background()
	st, sub := storeWithSubscription(t)
	pool := st.Pool()

	now := time.Now().UTC()
	old, older := now.AddDate(0, 0, -40), now.AddDate(0, 0, -41)
	// Days the migration would have made for rows that old.
	for _, at := range []time.Time{old, older} {
		for _, table := range []string{"webhook_deliveries", "event_payloads", "webhook_delivery_attempts", "connector_deliveries",
			"connector_delivery_attempts"} {
			if _, err := pool.Exec(ctx, `SELECT io_create_day_partition($1, 'event_time', $2::date)`, table, at.Format(time.DateOnly)); err != nil {
				t.Fatal(err)
			}
		}
	}
	delivered, pending := store.NewID(), store.NewID()
	if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{
		{ID: delivered, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-1", EventType: "order.placed", Payload: []byte(`{"a":1}`), EventTime: old},
		{ID: pending, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-1", EventType: "order.placed", Payload: []byte(`{"a":2}`), EventTime: older},
	}, store.NewClaim(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: delivered, EventTime: store.PartitionTime(old), Status: store.DeliveryDelivered, Attempts: 1,
		Attempt: &store.Attempt{StartedAt: now, Duration: time.Millisecond, Replica: "r"}}}); err != nil {
		t.Fatal(err)
	}
	if attempts, err := st.DeliveryAttempts(ctx, delivered, store.PartitionTime(old)); err != nil || len(attempts) != 1 {
		t.Fatalf("attempts recorded: %+v, %v; want one", attempts, err)
	}
	connectorAttempt := connectorDeliveryWithAttempt(t, st, old)

	m, err := retention.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	// Three days on: three more days get their partitions.
	later := now.AddDate(0, 0, 3)
	job := retention.New(pool, retention.Config{Tables: retention.DefaultRetentions.Tables(), Ahead: 7, Now: func() time.Time { return later }},
		m, testr.New(t))
	rep, err := job.Pass(ctx)
	if err != nil || !rep.Ran {
		t.Fatalf("pass: %+v, %v", rep, err)
	}
	for _, table := range []string{"webhook_deliveries", "connector_deliveries", "event_payloads", "connector_sync_log", "connector_inbound_events",
		"webhook_delivery_attempts", "connector_delivery_attempts"} {
		parts, err := retention.Partitions(ctx, pool, table)
		if err != nil {
			t.Fatal(err)
		}
		for d := 0; d <= 7; d++ {
			name := retention.PartitionName(table, later.AddDate(0, 0, d))
			if !slices.ContainsFunc(parts, func(p retention.Partition) bool { return p.Name == name }) {
				t.Errorf("%s missing after the pass", name)
			}
		}
	}
	if n := testutil.ToFloat64(m.Created.WithLabelValues("webhook_deliveries")); n < 3 {
		t.Errorf("created %v webhook_deliveries partitions, want at least 3", n)
	}

	oldPart, olderPart := retention.PartitionName("webhook_deliveries", old), retention.PartitionName("webhook_deliveries", older)
	if !slices.Contains(rep.Dropped, oldPart) || !slices.Contains(rep.Dropped, retention.PartitionName("event_payloads", old)) {
		t.Errorf("dropped %v, want %s and its payloads", rep.Dropped, oldPart)
	}
	if !slices.Contains(rep.Kept, olderPart) || slices.Contains(rep.Dropped, olderPart) {
		t.Errorf("kept %v, dropped %v: want %s kept for its pending delivery", rep.Kept, rep.Dropped, olderPart)
	}
	if n := testutil.ToFloat64(m.Kept.WithLabelValues("webhook_deliveries")); n != 1 {
		t.Errorf("kept gauge %v, want 1", n)
	}
	// The payload of a kept delivery stays with it.
	if !slices.Contains(rep.Kept, retention.PartitionName("event_payloads", older)) {
		t.Errorf("kept %v: want the pending delivery's payloads kept", rep.Kept)
	}
	if _, _, _, _, err := st.GetDelivery(ctx, delivered); err == nil {
		t.Error("a delivery of a dropped partition is still there")
	}
	// Attempts are done once made: their day goes after their own period,
	// that of the pending delivery too.
	for _, at := range []time.Time{old, older} {
		for _, table := range []string{"webhook_delivery_attempts", "connector_delivery_attempts"} {
			if name := retention.PartitionName(table, at); !slices.Contains(rep.Dropped, name) {
				t.Errorf("dropped %v, want %s", rep.Dropped, name)
			}
		}
	}
	if attempts, err := st.DeliveryAttempts(ctx, delivered, store.PartitionTime(old)); err != nil || len(attempts) != 0 {
		t.Errorf("attempts of a dropped day: %+v, %v; want none", attempts, err)
	}
	if attempts, err := st.ConnectorDeliveryAttempts(ctx, connectorAttempt, store.PartitionTime(old)); err != nil || len(attempts) != 0 {
		t.Errorf("connector attempts of a dropped day: %+v, %v; want none", attempts, err)
	}
	claimed, err := st.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].ID != pending || string(claimed[0].Payload) != `{"a":2}` {
		t.Fatalf("claimed %+v (%v), want the kept pending delivery with its payload", claimed, err)
	}

	// Its work done, the partition goes at the next pass.
	if _, err := st.RecordOutcomes(ctx, []store.Outcome{{DeliveryID: pending, EventTime: claimed[0].EventTime, Status: store.DeliveryDelivered,
		Attempts: 1, ClaimToken: claimed[0].ClaimToken}}); err != nil {
		t.Fatal(err)
	}
	rep, err = job.Pass(ctx)
	if err != nil || !slices.Contains(rep.Dropped, olderPart) || !slices.Contains(rep.Dropped, retention.PartitionName("event_payloads", older)) {
		t.Fatalf("second pass: %+v, %v; want %s and its payloads dropped", rep, err, olderPart)
	}
	if n := testutil.ToFloat64(m.Kept.WithLabelValues("webhook_deliveries")); n != 0 {
		t.Errorf("kept gauge %v after the work ended, want 0", n)
	}
	if n := testutil.ToFloat64(m.Dropped.WithLabelValues("webhook_deliveries")); n != 2 {
		t.Errorf("dropped counter %v, want 2", n)
	}
}

func TestTheDefaultPartitionLosesFinishedRowsPastRetention(t *testing.T) {
	ctx := context.Background()
	st, sub := storeWithSubscription(t)
	pool := st.Pool()
	// Stamped 100 days ago, where no daily partition is: the rows go to the
	// DEFAULT partitions.
	long := time.Now().UTC().AddDate(0, 0, -100)
	within := time.Now().UTC().AddDate(0, 0, -20)
	delivered, pending, recent := store.NewID(), store.NewID(), store.NewID()
	if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{
		{ID: delivered, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-1", EventType: "order.placed", Payload: []byte(`{"a":1}`), EventTime: long},
		{ID: pending, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-1", EventType: "order.placed", Payload: []byte(`{"a":2}`), EventTime: long},
	}, store.NewClaim(0)); err != nil {
		t.Fatal(err)
	}
	// Past retention only if the period is shorter than its age.
	if _, err := st.InsertDeliveries(ctx, []store.NewDelivery{
		{ID: recent, SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-1", EventType: "order.placed", Payload: []byte(`{"a":3}`),
			EventTime: within},
	}, store.NewClaim(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordOutcomes(ctx, []store.Outcome{
		{DeliveryID: delivered, EventTime: store.PartitionTime(long), Status: store.DeliveryDelivered, Attempts: 1},
		{DeliveryID: recent, EventTime: store.PartitionTime(within), Status: store.DeliveryDelivered, Attempts: 1},
	}); err != nil {
		t.Fatal(err)
	}
	inDefault := func(table string) (n int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table+`_default`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if d, p := inDefault("webhook_deliveries"), inDefault("event_payloads"); d != 3 || p != 3 {
		t.Fatalf("%d deliveries and %d payloads in the DEFAULT partitions, want 3 and 3", d, p)
	}

	m, err := retention.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := retention.New(pool, retention.Config{Tables: retention.DefaultRetentions.Tables()}, m, testr.New(t)).Pass(ctx)
	if err != nil || !rep.Ran {
		t.Fatalf("pass: %+v, %v", rep, err)
	}
	// The delivered one goes with its payload; the pending one and the one
	// within retention stay, with theirs.
	if rep.Purged["webhook_deliveries"] != 1 || rep.Purged["event_payloads"] != 1 {
		t.Errorf("purged %v, want one delivery and one payload", rep.Purged)
	}
	if n := testutil.ToFloat64(m.Purged.WithLabelValues("webhook_deliveries")); n != 1 {
		t.Errorf("purged counter %v, want 1", n)
	}
	if _, _, _, _, err := st.GetDelivery(ctx, delivered); err == nil {
		t.Error("the delivered row past retention is still in the DEFAULT partition")
	}
	for _, id := range []uuid.UUID{pending, recent} {
		if _, _, _, _, err := st.GetDelivery(ctx, id); err != nil {
			t.Errorf("delivery %s: %v; want it kept", id, err)
		}
	}
	claimed, err := st.ClaimDue(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].ID != pending || string(claimed[0].Payload) != `{"a":2}` {
		t.Fatalf("claimed %+v (%v), want the pending delivery with its payload", claimed, err)
	}
	if d, p := inDefault("webhook_deliveries"), inDefault("event_payloads"); d != 2 || p != 2 {
		t.Errorf("%d deliveries and %d payloads left in the DEFAULT partitions, want 2 and 2", d, p)
	}
}

// Dead letters retention removes, whether with their day's partition or
// from the DEFAULT one, are no longer dead-lettered now: the count the
// DEAD column shows loses them, the total keeps them.
func TestRetentionTakesTheDeadLettersItRemovesOffTheCount(t *testing.T) {
	ctx := context.Background()
	st, sub := storeWithSubscription(t)
	pool := st.Pool()
	now := time.Now().UTC()
	old, long, within := now.AddDate(0, 0, -40), now.AddDate(0, 0, -100), now.AddDate(0, 0, -20)
	deadLettersAt(t, st, sub, []time.Time{old}, old, old, long, within)
	dead := func() (now, total int64) {
		t.Helper()
		stats, err := st.SubscriptionStatsAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return stats[sub.ID].DeadLetteredNow, stats[sub.ID].DeadLettered
	}
	if n, total := dead(); n != 4 || total != 4 {
		t.Fatalf("dead letters now %d, in total %d; want 4 and 4", n, total)
	}
	m, _ := retention.NewMetrics(prometheus.NewRegistry())
	rep, err := retention.New(pool, retention.Config{Tables: retention.DefaultRetentions.Tables()}, m, testr.New(t)).Pass(ctx)
	if err != nil || !slices.Contains(rep.Dropped, retention.PartitionName("webhook_deliveries", old)) || rep.Purged["webhook_deliveries"] != 1 {
		t.Fatalf("pass: %+v, %v; want the old day dropped and the long-ago row purged", rep, err)
	}
	if n, total := dead(); n != 1 || total != 4 {
		t.Fatalf("after the pass: dead letters now %d, in total %d; want 1 (the one within retention) and 4", n, total)
	}
}

// A pass that stopped midway is finished by the next: a partition detached
// with its foreign key still on (as earlier versions left one) is taken off
// the counts and dropped; one already taken off the counts is dropped
// without taking its dead letters off a second time.
func TestAPassThatStoppedMidwayIsFinishedCountingDeadLettersOnce(t *testing.T) {
	ctx := context.Background()
	st, sub := storeWithSubscription(t)
	pool := st.Pool()
	now := time.Now().UTC()
	detached, forgotten, within := now.AddDate(0, 0, -40), now.AddDate(0, 0, -41), now.AddDate(0, 0, -20)
	deadLettersAt(t, st, sub, []time.Time{detached, forgotten}, detached, detached, forgotten, within)
	detachedPart, forgottenPart := retention.PartitionName("webhook_deliveries", detached), retention.PartitionName("webhook_deliveries", forgotten)
	for _, stmt := range []string{
		`ALTER TABLE webhook_deliveries DETACH PARTITION ` + detachedPart,
		// Detached, its one dead letter taken off the count, renamed: what
		// a pass leaves when it stops just before the drop.
		`ALTER TABLE webhook_deliveries DETACH PARTITION ` + forgottenPart,
		`ALTER TABLE ` + forgottenPart + ` DROP CONSTRAINT webhook_deliveries_subscription_id_fkey`,
		`UPDATE webhook_subscription_stats SET dead_lettered_now = dead_lettered_now - 1`,
		`ALTER TABLE ` + forgottenPart + ` RENAME TO ` + forgottenPart + `_forgotten`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}

	m, _ := retention.NewMetrics(prometheus.NewRegistry())
	rep, err := retention.New(pool, retention.Config{Tables: retention.DefaultRetentions.Tables()}, m, testr.New(t)).Pass(ctx)
	if err != nil || !slices.Contains(rep.Dropped, detachedPart) || !slices.Contains(rep.Dropped, forgottenPart) || len(rep.Busy) != 0 {
		t.Fatalf("pass: %+v, %v; want %s and %s dropped", rep, err, detachedPart, forgottenPart)
	}
	for _, name := range []string{detachedPart, forgottenPart, forgottenPart + "_forgotten", detachedPart + "_forgotten"} {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil || exists {
			t.Errorf("%s is still there (%v)", name, err)
		}
	}
	stats, err := st.SubscriptionStatsAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := stats[sub.ID].DeadLetteredNow; n != 1 {
		t.Errorf("dead letters now %d, want 1 (the one within retention; each dropped one taken off once)", n)
	}
}

// A drop is paced by DropRate; a pass stopped in one of its pauses leaves a
// day the next pass finishes, its dead letter taken off the count once.
func TestAPassStoppedWhilePacingItsDropIsFinishedByTheNext(t *testing.T) {
	ctx := context.Background()
	st, sub := storeWithSubscription(t)
	pool := st.Pool()
	old := time.Now().UTC().AddDate(0, 0, -40)
	// One dead letter in the dropped day, one within retention.
	deadLettersAt(t, st, sub, []time.Time{old}, old, time.Now().UTC().AddDate(0, 0, -20))
	part := retention.PartitionName("webhook_deliveries", old)
	m, _ := retention.NewMetrics(prometheus.NewRegistry())
	// One byte a second: the first piece's pause outlasts the pass.
	stopped, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	rep, err := retention.New(pool, retention.Config{Tables: retention.DefaultRetentions.Tables(), DropRate: 1}, m, testr.New(t)).Pass(stopped)
	if !errors.Is(err, context.DeadlineExceeded) || slices.Contains(rep.Dropped, part) {
		t.Fatalf("paced pass: %+v, %v; want it stopped in a pause, %s not yet dropped", rep, err, part)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname = $1 AND NOT relispartition`, part+"_forgotten").Scan(&left); err != nil || left != 1 {
		t.Fatalf("want %s_forgotten left for the next pass: %d, %v", part, left, err)
	}
	rep, err = retention.New(pool, retention.Config{Tables: retention.DefaultRetentions.Tables()}, m, testr.New(t)).Pass(ctx)
	if err != nil || !slices.Contains(rep.Dropped, part) {
		t.Fatalf("next pass: %+v, %v; want %s dropped", rep, err, part)
	}
	stats, err := st.SubscriptionStatsAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := stats[sub.ID].DeadLetteredNow; n != 1 {
		t.Errorf("dead letters now %d, want 1: the dropped one taken off once", n)
	}
}

// deadLettersAt stores a dead-lettered delivery of sub at each of times,
// counted on its stats, in partitions made for the days of partitioned.
func deadLettersAt(t *testing.T, st *store.Store, sub store.Subscription, partitioned []time.Time, times ...time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, at := range partitioned {
		if _, err := st.Pool().Exec(ctx, `SELECT io_create_day_partition('webhook_deliveries', 'event_time', $1::date)`, at.Format(time.DateOnly)); err != nil {
			t.Fatal(err)
		}
	}
	var news []store.NewDelivery
	var outcomes []store.Outcome
	for _, at := range times {
		d := store.NewDelivery{ID: store.NewID(), SubscriptionID: sub.ID, EventID: uuid.New(), StoreID: "store-1",
			EventType: "order.placed", Payload: []byte(`{}`), EventTime: at}
		news = append(news, d)
		outcomes = append(outcomes, store.Outcome{DeliveryID: d.ID, EventTime: store.PartitionTime(at), Status: store.DeliveryDeadLettered,
			Attempts: 5, Error: "5 attempts failed"})
	}
	if _, err := st.InsertDeliveries(ctx, news, store.NewClaim(0)); err != nil {
		t.Fatal(err)
	}
	n := len(times)
	if err := st.RecordOutcomesAndStats(ctx, outcomes, []store.StatsDelta{{SubscriptionID: sub.ID, FailedAttempts: int64(n), DeadLettered: int64(n),
		TrailingFailures: n, LastAttemptAt: time.Now(), LastError: "5 attempts failed"}}); err != nil {
		t.Fatal(err)
	}
}

// connectorDeliveryWithAttempt stores a connector delivery of the day of at,
// delivered at its one attempt, and returns its id.
func connectorDeliveryWithAttempt(t *testing.T, st *store.Store, at time.Time) uuid.UUID {
	t.Helper()
	ctx := context.Background()
	cfg := store.ConnectorConfig{ID: uuid.New(), StoreID: "store-1", ConnectorType: "ebay", DisplayName: "e", IsActive: true}
	if _, err := st.UpsertConnectorConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	d := store.NewConnectorDelivery{ID: store.NewID(), ConfigID: cfg.ID, EventID: uuid.New(), StoreID: "store-1", EventType: "product.updated",
		Payload: []byte(`{"sku":"X"}`), EventTime: at}
	if err := st.InsertConnectorDeliveries(ctx, []store.NewConnectorDelivery{d}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordConnectorOutcomes(ctx, []store.ConnectorOutcome{{DeliveryID: d.ID, EventTime: store.PartitionTime(at), ConfigID: cfg.ID,
		Status: store.DeliveryDelivered, Attempts: 1, Attempted: true,
		Attempt: &store.ConnectorAttempt{Attempt: store.Attempt{StartedAt: time.Now(), Duration: time.Millisecond, Replica: "r"}}}}, nil); err != nil {
		t.Fatal(err)
	}
	if attempts, err := st.ConnectorDeliveryAttempts(ctx, d.ID, store.PartitionTime(at)); err != nil || len(attempts) != 1 {
		t.Fatalf("connector attempts recorded: %+v, %v; want one", attempts, err)
	}
	return d.ID
}

// storeWithSubscription starts Postgres and stores one subscription.
func storeWithSubscription(t *testing.T) (*store.Store, store.Subscription) {
	t.Helper()
	st := testbed.Start(t, testbed.Needs{Postgres: true}).Store(t)
	sub := store.Subscription{ID: uuid.New(), StoreID: "store-1", Name: "n", TargetURL: "https://example.com/hook", Events: []string{"order.*"},
		IsActive: true, DeliveryTimeout: time.Second, SignatureScheme: store.SignatureSS3}
	if _, err := st.UpsertSubscription(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	return st, sub
}

func TestOneReplicaAtATimeRunsAPass(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	pool := bed.Store(t).Pool()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(0x726574656e74)); err != nil {
		t.Fatal(err)
	}
	m, _ := retention.NewMetrics(prometheus.NewRegistry())
	rep, err := retention.New(pool, retention.Config{Tables: retention.DefaultRetentions.Tables()}, m, testr.New(t)).Pass(ctx)
	if err != nil || rep.Ran {
		t.Fatalf("pass while another holds the job: %+v, %v; want skipped", rep, err)
	}
}

func TestParsePeriod(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "400d": 400 * 24 * time.Hour, "36h": 36 * time.Hour} {
		if got, err := retention.ParsePeriod(in); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0d", "-3d", "3w", "xd", "-1h"} {
		if _, err := retention.ParsePeriod(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
