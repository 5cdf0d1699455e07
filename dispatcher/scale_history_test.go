//go:build scale

package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/retention"
	"github.com/ss3dev/integration-operator/internal/store"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestScaleHistory is make bench-scale's figures for partitioned history,
// against a Postgres that fsyncs every commit:
//
//   - durable deliveries/s with an empty history, and again with
//     SCALE_HISTORY_ROWS (default 50 million) delivered rows present in
//     past days' partitions (generated with generate_series, with their
//     payload rows, then ANALYZEd);
//
//   - the p99 of produce-to-receipt latency at 1,000 events/s, without and
//     then during the retention drop of a partition of 10 million rows;
//
//   - disk bytes per delivery (every history relation's size over the rows
//     written) at fan-out 1 and 5, payloads of ~1.4 kB.
//
//     go test -tags scale -timeout 60m -run ScaleHistory -v ./dispatcher/
func TestScaleHistory(t *testing.T) {
	historyRows := envInt("SCALE_HISTORY_ROWS", 50_000_000)
	events := envInt("SCALE_EVENTS", 30_000)
	ctx := context.Background()
	e := startEnvDurable(t, true)
	br := startBenchReceivers(t, benchStores)
	subs := make([]store.Subscription, benchStores)
	for i, srv := range br.servers {
		subs[i], _ = e.subscribe(t, fmt.Sprint("bench-store-", i), srv.URL, []string{"order.*"}, nil)
	}
	pool := e.store.Pool()
	size := func() (bytes, deliveries int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT
			(SELECT COALESCE(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i
			 WHERE i.inhparent IN ('webhook_deliveries'::regclass, 'event_payloads'::regclass, 'connector_deliveries'::regclass,
			                       'connector_sync_log'::regclass, 'connector_inbound_events'::regclass,
			                       'webhook_delivery_attempts'::regclass, 'connector_delivery_attempts'::regclass))::bigint,
			(SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED')`).Scan(&bytes, &deliveries); err != nil {
			t.Fatal(err)
		}
		return bytes, deliveries
	}

	// 1. Empty history: throughput, and what a delivery costs at fan-out 1.
	bytes0, rows0 := size()
	empty := scaleThroughput(t, e, br, 0, events)
	bytes1, rows1 := size()
	perDelivery1 := float64(bytes1-bytes0) / float64(rows1-rows0)

	// 2. History: past days' partitions filled straight from generate_series
	// the way the dispatcher writes them (fan-out 5: a payload row per five
	// deliveries), the oldest day holding 10 million rows for the drop.
	started := time.Now()
	dropRows := min(10_000_000, historyRows)
	generateHistory(t, pool, subs, historyRows, dropRows)
	generated := time.Since(started)
	full := scaleThroughput(t, e, br, events, events)

	fmt.Printf("history throughput: durable deliveries/s with an empty history %.0f, with %d delivered rows present %.0f (%.0f%% of empty; goal >= 90%%); %d events each, history generated in %v\n",
		empty, historyRows, full, 100*full/empty, events, generated.Round(time.Second))

	// 3. Latency at 1,000 events/s, without and during the drop of the
	// oldest day (the only one past a 40-day retention).
	d := e.run(t, Config{Workers: 128})
	// Warmed up first: the new dispatcher's join of the consumer group
	// holds its first events for a second.
	scaleLatency(t, e, br, d, 1000, 3*time.Second, 2*events, nil)
	// 30 s, with a second window after the drop: a checkpoint or an
	// autovacuum in one shows as a difference between the two.
	quiet := scaleLatency(t, e, br, d, 1000, 30*time.Second, 2*events, nil)
	m, err := retention.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := retention.DefaultRetentions
	r.Deliveries, r.ConnectorDeliveries = 40*24*time.Hour, 40*24*time.Hour
	// SCALE_DROP_RATE_MIB tries another --retention-drop-rate (MiB/s).
	job := retention.New(pool, retention.Config{Tables: r.Tables(), DropRate: int64(envInt("SCALE_DROP_RATE_MIB", 0)) << 20}, m, testr.New(t))
	var rep retention.Report
	var dropTook time.Duration
	dropped := make(chan error, 1)
	during := scaleLatency(t, e, br, d, 1000, 10*time.Second, 2*events+30_000, func() {
		time.Sleep(2 * time.Second)
		start := time.Now()
		var err error
		rep, err = job.Pass(ctx)
		dropTook = time.Since(start)
		dropped <- err
	})
	if err := <-dropped; err != nil {
		t.Fatalf("retention pass: %v", err)
	}
	after := scaleLatency(t, e, br, d, 1000, 30*time.Second, 2*events, nil)
	oldest := retention.PartitionName("webhook_deliveries", time.Now().AddDate(0, 0, -41))
	if !slices.Contains(rep.Dropped, oldest) {
		t.Errorf("the pass dropped %v (busy %v), want %s", rep.Dropped, rep.Busy, oldest)
	}
	fmt.Printf("history drop latency: p99 produce-to-receipt at 1000 events/s %.1f ms without a drop (%.1f ms after it), %.1f ms while the retention pass drops a partition of %d rows (pass took %v, paced at %s/s; dropped %s); p50 %.1f / %.1f / %.1f ms, max %.1f / %.1f / %.1f ms (without, after, during)\n",
		ms(quiet.p99), ms(after.p99), ms(during.p99), dropRows, dropTook.Round(time.Millisecond),
		resource.NewQuantity(job.DropRate(), resource.BinarySI), strings.Join(rep.Dropped, ","),
		ms(quiet.p50), ms(after.p50), ms(during.p50), ms(quiet.max), ms(after.max), ms(during.max))

	// 4. Fan-out 5: four more subscriptions per store.
	for i, srv := range br.servers {
		for range 4 {
			e.subscribe(t, fmt.Sprint("bench-store-", i), srv.URL, []string{"order.*"}, nil)
		}
	}
	bytes4, rows4 := size()
	fanned := events / 5
	scaleProduce(t, e, 3*events, 3*events+fanned)
	waitFor(t, "fan-out 5 deliveries recorded", rows4+int64(5*fanned), func() int64 { _, n := size(); return n }, d)
	bytes5, rows5 := size()
	perDelivery5 := float64(bytes5-bytes4) / float64(rows5-rows4)
	fmt.Printf("history disk: bytes per delivery %.0f at fan-out 1, %.0f at fan-out 5 (payload %d bytes; every history relation, tables and indexes)\n",
		perDelivery1, perDelivery5, len(scalePayload(0)))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// scalePayload is an event's data of about 1.4 kB, like the platform's.
func scalePayload(i int) []byte {
	data, _ := json.Marshal(map[string]any{"orderId": i, "producedAt": time.Now().UnixNano(),
		"lines": strings.Repeat(fmt.Sprintf("%08x", i), 160)})
	return data
}

func scaleProduce(t *testing.T, e *env, from, to int) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: eventsTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond}
	defer w.Close()
	for start := from; start < to; start += 5000 {
		var msgs []kafka.Message
		for i := start; i < min(start+5000, to); i++ {
			value, _ := json.Marshal(map[string]any{"eventId": uuid.New(), "eventType": "order.placed", "storeId": fmt.Sprint("bench-store-", i%benchStores),
				"data": json.RawMessage(scalePayload(i))})
			msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: value})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
}

// scaleThroughput produces events first, then runs a dispatcher until
// they are delivered and recorded, and stops it; it returns deliveries/s.
func scaleThroughput(t *testing.T, e *env, br *benchReceivers, from, events int) float64 {
	scaleProduce(t, e, from, from+events)
	base := br.delivered.Load()
	// Counted in today's partitions only: a count over the whole history
	// would scan its millions of rows inside the measurement, and measure
	// the count rather than the dispatcher.
	today := time.Now().UTC().Truncate(24 * time.Hour)
	recorded := func() int64 {
		var n int64
		if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries
			WHERE status = 'DELIVERED' AND event_time >= $1`, today).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	recorded0 := recorded()
	start := time.Now()
	d, stop := e.start(t, Config{Workers: 128}, []string{eventsTopic})
	defer stop()
	waitFor(t, "deliveries received", base+int64(events), br.delivered.Load, d)
	waitFor(t, "deliveries recorded DELIVERED", recorded0+int64(events), recorded, d)
	return float64(events) / time.Since(start).Seconds()
}

type latencies struct{ p50, p99, max time.Duration }

// scaleLatency produces rate events/s for duration (numbered from first)
// while during runs, and returns the latencies of their deliveries.
func scaleLatency(t *testing.T, e *env, br *benchReceivers, d *Dispatcher, rate int, duration time.Duration, first int, during func()) latencies {
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: eventsTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond}
	defer w.Close()
	br.mu.Lock()
	br.latencies = nil
	br.mu.Unlock()
	base := br.delivered.Load()
	// The measurement covers all of during: it produces until both the
	// duration has passed and during has returned.
	done := make(chan struct{})
	if during != nil {
		go func() { during(); close(done) }()
	} else {
		close(done)
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick, total := rate/100, 0
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	for deadline := time.Now().Add(duration); time.Now().Before(deadline) || !finished(); {
		<-tick.C
		msgs := make([]kafka.Message, 0, perTick)
		for i := first + total; i < first+total+perTick; i++ {
			value, _ := json.Marshal(map[string]any{"eventId": uuid.New(), "eventType": "order.placed", "storeId": fmt.Sprint("bench-store-", i%benchStores),
				"data": json.RawMessage(scalePayload(i))})
			msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: value})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		total += perTick
	}
	waitFor(t, "deliveries received", base+int64(total), br.delivered.Load, d)
	br.mu.Lock()
	lat := slices.Clone(br.latencies)
	br.mu.Unlock()
	slices.Sort(lat)
	return latencies{p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], max: lat[len(lat)-1]}
}

// generateHistory writes rows delivered deliveries into past days'
// partitions as the dispatcher stores them: each event fanned out to five
// subscriptions, its ~1.4 kB payload stored once. The oldest day (41 days
// ago) holds dropRows; days 40 to 31 ago share the rest. Each day is loaded
// into a table of its own and then attached, so that its indexes are built
// once rather than row by row.
func generateHistory(t *testing.T, pool *pgxpool.Pool, subs []store.Subscription, rows, dropRows int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%.80s: %v", sql, err)
		}
	}
	exec(`SET maintenance_work_mem = '512MB'`)
	ids := make([]uuid.UUID, len(subs))
	for i, s := range subs {
		ids[i] = s.ID
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	perDay := map[int]int{41: dropRows}
	if rest := rows - dropRows; rest > 0 {
		for ago := 40; ago > 30; ago-- {
			perDay[ago] = rest / 10
		}
	}
	payload := `convert_to('{"lines":"' || repeat(lpad(to_hex(n), 8, '0'), 160) || '","orderId":' || n || ',"producedAt":0}', 'UTF8')`
	for ago, n := range perDay {
		events := n / 5
		if events == 0 {
			continue
		}
		lo := today.AddDate(0, 0, -ago)
		hi := lo.AddDate(0, 0, 1)
		span := float64(24*time.Hour/time.Microsecond) / float64(events+1)
		part, payloads := retention.PartitionName("webhook_deliveries", lo), retention.PartitionName("event_payloads", lo)
		for _, tbl := range []struct{ name, parent string }{{part, "webhook_deliveries"}, {payloads, "event_payloads"}} {
			exec(fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`, tbl.name, tbl.parent))
			// Lets the attach skip its scan of the rows.
			exec(fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s_range CHECK (event_time >= '%s' AND event_time < '%s')`,
				tbl.name, tbl.name, lo.Format(time.RFC3339), hi.Format(time.RFC3339)))
		}
		exec(fmt.Sprintf(`INSERT INTO %s (payload_digest, event_time, raw_payload)
			SELECT sha256(p), at, p FROM (SELECT %s AS p, $1::timestamptz + n * $2::float8 * interval '1 microsecond' AS at
			FROM generate_series(1, $3::int) n) x`, payloads, payload), lo, span, events)
		exec(fmt.Sprintf(`INSERT INTO %s (delivery_id, subscription_id, store_id, event_type, event_id, http_status, attempt_number,
				delivered_at, status, created_at, updated_at, event_time, payload_digest)
			SELECT gen_random_uuid(), ($4::uuid[])[(ev.n %% 2) * 5 + j + 1], 'bench-store-' || ((ev.n %% 2) * 5 + j), 'order.placed', ev.id, 200, 1,
				ev.at, 'DELIVERED', ev.at, ev.at, ev.at, ev.digest
			FROM (SELECT n, md5($5 || '/' || n)::uuid AS id, $1::timestamptz + n * $2::float8 * interval '1 microsecond' AS at, sha256(%s) AS digest
				FROM generate_series(1, $3::int) n) ev
			CROSS JOIN generate_series(0, 4) j`, part, payload), lo, span, events, ids, lo.Format(time.DateOnly))
		for _, tbl := range []struct{ name, parent string }{{part, "webhook_deliveries"}, {payloads, "event_payloads"}} {
			// Vacuumed, as a past day long since is: else autovacuum's
			// first pass over millions of new rows runs during the
			// measurement, which is not what history costs.
			exec(`VACUUM (ANALYZE) ` + tbl.name)
			exec(fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`, tbl.parent, tbl.name,
				lo.Format(time.RFC3339), hi.Format(time.RFC3339)))
			exec(fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT %s_range`, tbl.name, tbl.name))
		}
	}
	exec(`ANALYZE webhook_deliveries`)
	exec(`ANALYZE event_payloads`)
	// The load's dirty pages are flushed now, not by a checkpoint in the
	// middle of the measurement that follows.
	exec(`CHECKPOINT`)
}
