package store_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

// BenchmarkListNewestDeliveries lists the newest 50 deliveries of the
// busiest subscription from webhook_deliveries filled with SCALE_LIST_ROWS
// rows (default 100,000) over 30 days' partitions and 1,000
// subscriptions, one of which has a tenth of the rows: unfiltered, dead
// letters only (one row in a thousand), the second page by cursor, and
// the newest 50 of ten subscriptions.
//
//	SCALE_LIST_ROWS=10000000 go test -run '^$' -bench ListNewestDeliveries -benchtime 100x ./internal/store/
//
// With -v it logs each list's plan (EXPLAIN ANALYZE, BUFFERS).
func BenchmarkListNewestDeliveries(b *testing.B) {
	rows := 100_000
	if v, err := strconv.Atoi(os.Getenv("SCALE_LIST_ROWS")); err == nil && v > 0 {
		rows = v
	}
	bed := testbed.Start(b, testbed.Needs{Postgres: true})
	st, ctx := bed.Store(b), context.Background()
	pool := st.Pool()
	const days, subscriptions = 30, 1000
	dayPartitions(b, st, days, "webhook_deliveries")
	subs := make([]uuid.UUID, subscriptions)
	for i := range subs {
		subs[i] = uuid.New()
	}
	busy := subs[0]
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%.60s: %v", sql, err)
		}
	}
	exec(`INSERT INTO webhook_subscriptions (subscription_id, store_id, name, target_url, events)
		SELECT id, 'store', 'n', 'https://example.com', '{order.*}' FROM unnest($1::uuid[]) AS id`, subs)
	// In time order, as the dispatcher writes them; a day per statement.
	start := time.Now()
	perDay := rows / days
	for day := range days {
		exec(`INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, event_time,
				status, attempt_number, created_at, updated_at)
			SELECT gen_random_uuid(), CASE WHEN g % 10 = 0 THEN $1 ELSE ($2::uuid[])[1 + g % 999 + 1] END, 'store',
				(ARRAY['order.placed', 'order.paid', 'product.updated'])[1 + g % 3], gen_random_uuid(), at,
				CASE WHEN g / 10 % 1000 = 7 THEN 'DEAD_LETTERED' WHEN g / 10 % 100 = 3 THEN 'FAILED' ELSE 'DELIVERED' END, 1, at, at
			FROM generate_series(1, $3::int) AS g,
				LATERAL (SELECT date_trunc('day', now()) - ($4::int * interval '1 day') + (g * interval '1 day') / $3::int AS at) t`,
			busy, subs, perDay, days-1-day)
	}
	exec(`VACUUM ANALYZE webhook_deliveries`)
	b.Logf("%d rows in %v", perDay*days, time.Since(start).Round(time.Second))

	explain := testing.Verbose()
	var traced *store.Store
	var last lastQuery
	if explain {
		cfg, err := pgxpool.ParseConfig(bed.DatabaseURL)
		if err != nil {
			b.Fatal(err)
		}
		cfg.ConnConfig.Tracer = &last
		tp, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(tp.Close)
		traced = store.New(tp)
	}
	first, err := st.ListWebhookDeliveries(ctx, store.DeliveryFilter{Owners: []uuid.UUID{busy}, Limit: 50})
	if err != nil || len(first) != 50 {
		b.Fatalf("first page: %d rows, %v", len(first), err)
	}
	cursor := first[len(first)-1].Cursor()
	for _, c := range []struct {
		name string
		f    store.DeliveryFilter
	}{
		{"newest-50", store.DeliveryFilter{Owners: []uuid.UUID{busy}, Limit: 50}},
		{"dead-lettered-50", store.DeliveryFilter{Owners: []uuid.UUID{busy}, Status: store.DeliveryDeadLettered, Limit: 50}},
		{"page-2", store.DeliveryFilter{Owners: []uuid.UUID{busy}, After: &cursor, Limit: 50}},
		{"newest-50-of-10", store.DeliveryFilter{Owners: subs[:10], Limit: 50}},
	} {
		if explain {
			if _, err := traced.ListWebhookDeliveries(ctx, c.f); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s:\n%s", c.name, last.explain(b, pool))
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				got, err := st.ListWebhookDeliveries(ctx, c.f)
				if err != nil || len(got) == 0 {
					b.Fatalf("%d rows, %v", len(got), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/list")
		})
	}
}

// lastQuery keeps the last statement a pool ran, to explain it.
type lastQuery struct {
	sql  string
	args []any
}

func (q *lastQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	q.sql, q.args = data.SQL, data.Args
	return ctx
}

func (q *lastQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (q *lastQuery) explain(b *testing.B, pool *pgxpool.Pool) string {
	rows, err := pool.Query(context.Background(), "EXPLAIN (ANALYZE, BUFFERS) "+q.sql, q.args...)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
