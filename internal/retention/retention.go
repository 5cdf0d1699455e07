// Package retention keeps the history tables' daily partitions (migration
// 00015): it creates each table's partitions some days ahead and drops
// those older than the table's retention period. Dropping is O(1): the
// partition is detached and its table dropped, never its rows deleted. A
// partition still holding unfinished work (a delivery to make, a sync run
// open, a provider webhook not yet published) is kept, logged and counted,
// until that work ends. Rows whose time fell outside every daily partition
// (an event stamped long ago) live in the table's DEFAULT partition; its
// finished rows past retention are deleted in bounded batches, since a
// DEFAULT partition is never dropped.
//
// One replica at a time runs a pass (a session advisory lock; the others
// skip theirs). Every DDL statement runs under a short lock_timeout, so it
// gives up, to retry on the next pass, rather than queue behind the hot
// path's transactions and make them queue behind it.
package retention

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Table is a partitioned history table and how long its rows are kept.
type Table struct {
	Name string
	// Key is the partition key column.
	Key       string
	Retention time.Duration
	// Unfinished is a condition on the table's rows that holds while their
	// work is still to do; a partition with such a row is kept. Empty:
	// every row is finished.
	Unfinished string
	// While is tables whose partition for the same day keeps this one's:
	// event payloads live as long as a delivery of theirs may. In the
	// DEFAULT partition, a row is kept while a row of those tables refers
	// to it (same payload_digest and key).
	While []string
	// Forget, when set, is an UPDATE run in the same transaction as the
	// drop or delete of rows, with %[1]s naming a relation of those rows:
	// it takes them off the counts kept of them elsewhere.
	Forget string
}

// Retentions are the periods set per table.
type Retentions struct {
	Deliveries, ConnectorDeliveries, SyncLog, InboundEvents time.Duration
	// DeliveryAttempts: every attempt of a webhook delivery (migration 00017).
	DeliveryAttempts time.Duration
	// ConnectorAttempts: every attempt of a connector delivery (00021).
	ConnectorAttempts time.Duration
}

// DefaultRetentions keep 30 days of deliveries, their attempts and sync
// runs, and 400 of the provider webhooks that are the inbound payment audit.
var DefaultRetentions = Retentions{
	Deliveries: 30 * day, ConnectorDeliveries: 30 * day, SyncLog: 30 * day, InboundEvents: 400 * day, DeliveryAttempts: 30 * day,
	ConnectorAttempts: 30 * day,
}

// Tables are the history tables of migrations 00015, 00017 and 00021 under r.
func (r Retentions) Tables() []Table {
	open := `status IN ('PENDING', 'FAILED')`
	return []Table{
		{Name: "webhook_deliveries", Key: "event_time", Retention: r.Deliveries, Unfinished: open,
			Forget: forgetDeadLetters("webhook_subscription_stats", "subscription_id", "dead_lettered_now")},
		{Name: "connector_deliveries", Key: "event_time", Retention: r.ConnectorDeliveries, Unfinished: open,
			Forget: forgetDeadLetters("connector_stats", "config_id", "outbound_dead_lettered_now")},
		{Name: "event_payloads", Key: "event_time", Retention: max(r.Deliveries, r.ConnectorDeliveries),
			While: []string{"webhook_deliveries", "connector_deliveries"}},
		{Name: "connector_sync_log", Key: "started_at", Retention: r.SyncLog, Unfinished: `status = 'RUNNING'`},
		{Name: "connector_inbound_events", Key: "received_at", Retention: r.InboundEvents, Unfinished: `status = 'RECEIVED'`},
		// An attempt is done once made: its own period alone decides.
		{Name: "webhook_delivery_attempts", Key: "event_time", Retention: r.DeliveryAttempts},
		{Name: "connector_delivery_attempts", Key: "event_time", Retention: r.ConnectorAttempts},
	}
}

// forgetDeadLetters: a dead letter retention removes can no longer be
// re-triggered, so it leaves the count of those dead-lettered now (the
// DEAD column, migration 00020).
func forgetDeadLetters(stats, key, column string) string {
	return fmt.Sprintf(`UPDATE %[1]s s SET %[3]s = greatest(0, s.%[3]s - g.n)
		FROM (SELECT %[2]s, count(*) AS n FROM %%[1]s WHERE status = 'DEAD_LETTERED' GROUP BY %[2]s) g
		WHERE s.%[2]s = g.%[2]s`, stats, key, column)
}

// DefaultDropRate frees a day of 10 million deliveries (about 7 GB with
// its payloads) in under 4 minutes. On a disk that trims what is freed
// (ext4 mounted with discard), a faster drop delays the deliveries'
// commits (bench-scale: p99 163 ms at 256Mi/s, 59 ms at 32Mi/s); it is
// still five times what 1,000 events/s fanned out five ways write.
const DefaultDropRate = 32 << 20

// Config says what the job keeps and how often it runs.
type Config struct {
	Tables []Table
	// Ahead is how many days after today get their partition in advance.
	Ahead int
	// Interval between passes.
	Interval time.Duration
	// LockTimeout bounds how long a DDL statement waits for its lock.
	LockTimeout time.Duration
	// DropRate is the bytes per second a drop frees at most, on average:
	// after each index or table of a dropped partition, the pass pauses
	// for its size over DropRate.
	DropRate int64
	// Now is the clock (tests move it); nil is time.Now.
	Now func() time.Time
}

const day = 24 * time.Hour

// Metrics of the retention job.
type Metrics struct {
	Created   *prometheus.CounterVec
	Dropped   *prometheus.CounterVec
	Kept      *prometheus.GaugeVec
	Purged    *prometheus.CounterVec
	Failures  prometheus.Counter
	LastRun   prometheus.Gauge
	LockWaits prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retention_partitions_created_total", Help: "Daily history partitions created ahead, by table."}, []string{"table"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retention_partitions_dropped_total", Help: "Daily history partitions dropped after their retention, by table."}, []string{"table"}),
		Kept: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "retention_partitions_kept_unfinished", Help: "Partitions past their retention kept because they still hold unfinished work, by table (at the last pass)."}, []string{"table"}),
		Purged: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "retention_default_rows_purged_total", Help: "Finished rows past retention deleted from a table's DEFAULT partition (rows whose time no daily partition covered), by table."}, []string{"table"}),
		Failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "retention_pass_failures_total", Help: "Retention passes that failed (retried at the next)."}),
		LastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "retention_last_run_timestamp_seconds", Help: "When this replica last completed a retention pass (Unix seconds)."}),
		LockWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "retention_lock_timeouts_total", Help: "Partition changes given up on lock_timeout (busy table; retried at the next pass)."}),
	}
	for _, c := range []prometheus.Collector{m.Created, m.Dropped, m.Kept, m.Purged, m.Failures, m.LastRun, m.LockWaits} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Job runs retention passes.
type Job struct {
	pool    *pgxpool.Pool
	cfg     Config
	metrics *Metrics
	log     logr.Logger
}

// New makes a job; zero Ahead, Interval and LockTimeout take defaults.
func New(pool *pgxpool.Pool, cfg Config, m *Metrics, log logr.Logger) *Job {
	if cfg.Ahead == 0 {
		cfg.Ahead = 7
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = 200 * time.Millisecond
	}
	if cfg.DropRate <= 0 {
		cfg.DropRate = DefaultDropRate
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Job{pool: pool, cfg: cfg, metrics: m, log: log}
}

// DropRate is the bytes per second a drop frees at most, on average.
func (j *Job) DropRate() int64 { return j.cfg.DropRate }

// Run runs a pass at once and then every Interval until ctx ends.
func (j *Job) Run(ctx context.Context) {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := j.Pass(ctx); err != nil && ctx.Err() == nil {
			j.metrics.Failures.Inc()
			j.log.Error(err, "retention pass failed; retried at the next")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Report is what a pass did.
type Report struct {
	// Ran is false when another replica held the job's lock.
	Ran     bool
	Created []string
	Dropped []string
	// Kept are partitions past retention kept for their unfinished work.
	Kept []string
	// Busy are partition changes given up on lock_timeout.
	Busy []string
	// Purged counts, by table, the rows deleted from its DEFAULT partition.
	Purged map[string]int64
}

// jobLock is the advisory lock one replica at a time runs passes under.
const jobLock = 0x726574656e74 // "retent"

// Pass creates the partitions due ahead and drops those past retention.
func (j *Job) Pass(ctx context.Context) (Report, error) {
	var rep Report
	conn, err := j.pool.Acquire(ctx)
	if err != nil {
		return rep, err
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(jobLock)).Scan(&rep.Ran); err != nil || !rep.Ran {
		return rep, err
	}
	defer func() {
		// A session lock: should the unlock fail, the connection goes.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(jobLock)); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	today := utcDay(j.cfg.Now())
	for _, t := range j.cfg.Tables {
		if err := j.create(ctx, conn.Conn(), t, today, &rep); err != nil {
			return rep, err
		}
	}
	for _, t := range j.cfg.Tables {
		kept := 0
		if err := j.drop(ctx, conn.Conn(), t, today, &rep, &kept); err != nil {
			return rep, err
		}
		j.metrics.Kept.WithLabelValues(t.Name).Set(float64(kept))
		if err := j.purgeDefault(ctx, conn.Conn(), t, &rep); err != nil {
			return rep, err
		}
	}
	j.metrics.LastRun.SetToCurrentTime()
	return rep, nil
}

func (j *Job) create(ctx context.Context, conn *pgx.Conn, t Table, today time.Time, rep *Report) error {
	for d := 0; d <= j.cfg.Ahead; d++ {
		dayOf := today.AddDate(0, 0, d)
		var created bool
		err := j.ddl(ctx, conn, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SELECT io_create_day_partition($1, $2, $3)`, t.Name, t.Key, dayOf).Scan(&created)
		})
		switch {
		case busy(err):
			j.gaveUp(rep, PartitionName(t.Name, dayOf))
			continue
		case err != nil:
			return fmt.Errorf("create partition of %s for %s: %w", t.Name, dayOf.Format(time.DateOnly), err)
		case created:
			j.metrics.Created.WithLabelValues(t.Name).Inc()
			rep.Created = append(rep.Created, PartitionName(t.Name, dayOf))
		}
	}
	return nil
}

func (j *Job) drop(ctx context.Context, conn *pgx.Conn, t Table, today time.Time, rep *Report, kept *int) error {
	// A partition is past retention once its whole day is.
	cutoff := utcDay(j.cfg.Now().Add(-t.Retention))
	parts, err := Partitions(ctx, conn, t.Name)
	if err != nil {
		return err
	}
	// Tables detached by a pass that stopped before dropping them.
	if err := j.dropDetached(ctx, conn, t, rep); err != nil {
		return err
	}
	for _, p := range parts {
		if !p.Day.Before(cutoff) {
			continue
		}
		if why, err := j.unfinishedIn(ctx, conn, t, p); err != nil {
			return err
		} else if why != "" {
			*kept++
			rep.Kept = append(rep.Kept, p.Name)
			j.log.Info("partition past its retention kept: it holds unfinished work", "partition", p.Name, "why", why)
			continue
		}
		// Detach, and check again under the detach's lock: work may have
		// been written to the partition since (a requeue, a late event).
		var again string
		err := j.ddl(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s`, ident(t.Name), ident(p.Name))); err != nil {
				return err
			}
			var err error
			if again, err = j.unfinishedIn(ctx, tx, t, p); err != nil {
				return err
			} else if again != "" {
				return errKeep
			}
			// The detach has locked what the partition's foreign keys
			// refer to already: let go of them here, briefly, so that the
			// drop's long commit locks nothing the hot path reads.
			return dropForeignKeys(ctx, tx, p.Name)
		})
		switch {
		case errors.Is(err, errKeep):
			*kept++
			rep.Kept = append(rep.Kept, p.Name)
			j.log.Info("partition past its retention kept: it holds unfinished work", "partition", p.Name, "why", again)
			continue
		case busy(err):
			j.gaveUp(rep, p.Name)
			j.log.Info("partition not detached: its table is busy; retried at the next pass", "partition", p.Name)
			continue
		case err != nil:
			return fmt.Errorf("detach %s: %w", p.Name, err)
		}
		if err := j.dropDetachedTable(ctx, conn, t, p.Name, rep); err != nil {
			return err
		}
	}
	return nil
}

var errKeep = errors.New("the partition holds unfinished work")

// purgeBatch and purgeBatches bound what one pass deletes from a DEFAULT
// partition, so that a pass stays short; the rest goes at the next pass.
const purgeBatch, purgeBatches = 5000, 20

// purgeDefault deletes from t's DEFAULT partition the finished rows whose
// time is past retention: they are there because no daily partition
// covered their time, and the partition itself is never dropped.
func (j *Job) purgeDefault(ctx context.Context, conn *pgx.Conn, t Table, rep *Report) error {
	def := ident(t.Name + "_default")
	where := ident(t.Key) + ` < $1`
	if t.Unfinished != "" {
		where += ` AND NOT (` + t.Unfinished + `)`
	}
	for _, other := range t.While {
		where += fmt.Sprintf(` AND NOT EXISTS (SELECT 1 FROM %s o WHERE o.payload_digest = d.payload_digest AND o.%s = d.%s)`,
			ident(other), ident(t.Key), ident(t.Key))
	}
	// One statement deletes a batch and takes it off the counts (Forget).
	forget := ""
	if t.Forget != "" {
		forget = fmt.Sprintf(`, forgotten AS (%s)`, fmt.Sprintf(t.Forget, "gone"))
	}
	cutoff := utcDay(j.cfg.Now().Add(-t.Retention))
	for range purgeBatches {
		var n int64
		err := conn.QueryRow(ctx, fmt.Sprintf(`WITH gone AS (DELETE FROM %s WHERE ctid = ANY (ARRAY(SELECT ctid FROM %s d WHERE %s LIMIT %d)) RETURNING *)%s
			SELECT count(*) FROM gone`, def, def, where, purgeBatch, forget), cutoff).Scan(&n)
		if err != nil {
			return fmt.Errorf("purge %s_default: %w", t.Name, err)
		}
		if n > 0 {
			if rep.Purged == nil {
				rep.Purged = map[string]int64{}
			}
			rep.Purged[t.Name] += n
			j.metrics.Purged.WithLabelValues(t.Name).Add(float64(n))
		}
		if n < purgeBatch {
			return nil
		}
	}
	return nil
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// unfinishedIn says why p must be kept, or "" when it may go.
func (j *Job) unfinishedIn(ctx context.Context, db queryer, t Table, p Partition) (string, error) {
	if t.Unfinished != "" {
		var n int64
		if err := db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM %s WHERE %s LIMIT 1000) u`, ident(p.Name), t.Unfinished)).Scan(&n); err != nil {
			return "", fmt.Errorf("look for unfinished work in %s: %w", p.Name, err)
		}
		if n > 0 {
			return fmt.Sprintf("%d or more rows where %s", n, t.Unfinished), nil
		}
	}
	for _, other := range t.While {
		var exists bool
		if err := db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, PartitionName(other, p.Day)).Scan(&exists); err != nil {
			return "", err
		}
		if exists {
			return other + " still keeps that day", nil
		}
	}
	return "", nil
}

// ddl runs change in a transaction whose locks are waited for at most
// LockTimeout.
func (j *Job) ddl(ctx context.Context, conn *pgx.Conn, change func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, j.cfg.LockTimeout.Milliseconds())); err != nil {
			return err
		}
		return change(tx)
	})
}

// gaveUp records a change given up on its lock wait, retried next pass.
func (j *Job) gaveUp(rep *Report, name string) {
	j.metrics.LockWaits.Inc()
	rep.Busy = append(rep.Busy, name)
}

// busy: a DDL statement gave up its lock wait (lock_timeout), or lost a
// deadlock to the hot path's transactions; the next pass retries.
func busy(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01") // lock_not_available, deadlock_detected
}

// Partition is one daily partition.
type Partition struct {
	Name string
	Day  time.Time
}

var dayPartition = regexp.MustCompile(`_p(\d{8})$`)

// Partitions lists table's daily partitions, oldest first.
func Partitions(ctx context.Context, conn interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, table string) ([]Partition, error) {
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass ORDER BY c.relname`, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	var out []Partition
	for _, n := range names {
		m := dayPartition.FindStringSubmatch(n)
		if m == nil || !strings.HasPrefix(n, table+"_p") {
			continue // the DEFAULT partition
		}
		d, err := time.Parse("20060102", m[1])
		if err != nil {
			continue
		}
		out = append(out, Partition{Name: n, Day: d})
	}
	return out, nil
}

// forgottenSuffix marks a detached partition whose rows are off the counts
// (Forget) and that only awaits its DROP.
const forgottenSuffix = "_forgotten"

// dropDetached finishes what a pass that stopped left: tables named as
// table's daily partitions that are no partition (detached) or are marked
// forgotten.
func (j *Job) dropDetached(ctx context.Context, conn *pgx.Conn, t Table, rep *Report) error {
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND NOT c.relispartition
		  AND c.relname ~ ('^' || $1 || '_p[0-9]{8}(' || $2 || ')?$')`, t.Name, forgottenSuffix)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasSuffix(n, forgottenSuffix) {
			if err := j.dropForgotten(ctx, conn, t, n, rep); err != nil {
				return err
			}
			continue
		}
		// Detached by an earlier version, its foreign keys still held.
		err := j.ddl(ctx, conn, func(tx pgx.Tx) error { return dropForeignKeys(ctx, tx, n) })
		if busy(err) {
			j.gaveUp(rep, n)
			continue
		} else if err != nil {
			return fmt.Errorf("release the foreign keys of detached %s: %w", n, err)
		}
		if err := j.dropDetachedTable(ctx, conn, t, n, rep); err != nil {
			return err
		}
	}
	return nil
}

// dropDetachedTable takes a detached partition's rows off the counts kept
// of them (t.Forget) and drops it. The two are separate transactions, so
// that the counts' rows are locked only for the Forget, not for the drop's
// commit, which unlinks the partition's files (gigabytes, for a day of
// deliveries); renaming the table in the Forget's transaction says that
// it is done, should the pass stop before the drop.
func (j *Job) dropDetachedTable(ctx context.Context, conn *pgx.Conn, t Table, name string, rep *Report) error {
	if t.Forget != "" {
		err := j.ddl(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf(t.Forget, ident(name))); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s RENAME TO %s`, ident(name), ident(name+forgottenSuffix)))
			return err
		})
		switch {
		case busy(err):
			// Detached: the next pass finishes it.
			j.gaveUp(rep, name)
			return nil
		case err != nil:
			return fmt.Errorf("take %s off the counts: %w", name, err)
		}
		name += forgottenSuffix
	}
	return j.dropForgotten(ctx, conn, t, name, rep)
}

// dropForgotten drops a detached partition that holds no foreign key and
// is off the counts: it locks nothing but itself. Its files are what
// costs: a day of deliveries is gigabytes for the filesystem to free, and
// the hot path's commits wait on the same disk. So it goes piece by
// piece, its indexes and then its table, each followed by a pause that
// keeps the bytes freed per second under DropRate.
func (j *Job) dropForgotten(ctx context.Context, conn *pgx.Conn, t Table, name string, rep *Report) error {
	pieces, err := piecesOf(ctx, conn, name)
	if err != nil {
		return fmt.Errorf("size up %s: %w", name, err)
	}
	for _, p := range pieces {
		if _, err := conn.Exec(ctx, p.drop); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		pause := time.Duration(float64(p.bytes) / float64(j.cfg.DropRate) * float64(time.Second))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
	partition := strings.TrimSuffix(name, forgottenSuffix)
	j.metrics.Dropped.WithLabelValues(t.Name).Inc()
	rep.Dropped = append(rep.Dropped, partition)
	j.log.Info("partition past its retention dropped", "partition", partition)
	return nil
}

type piece struct {
	drop  string
	bytes int64
}

// piecesOf is how to drop a detached table in parts: each index (through
// its constraint, for a primary key), then the table itself.
func piecesOf(ctx context.Context, conn *pgx.Conn, table string) ([]piece, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, ident(table)).Scan(&exists); err != nil || !exists {
		return nil, err
	}
	rows, err := conn.Query(ctx, `SELECT ic.relname, COALESCE(c.conname, ''), pg_relation_size(i.indexrelid)
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
		WHERE i.indrelid = $1::regclass ORDER BY 3 DESC`, ident(table))
	if err != nil {
		return nil, err
	}
	var out []piece
	for rows.Next() {
		var index, constraint string
		var bytes int64
		if err := rows.Scan(&index, &constraint, &bytes); err != nil {
			return nil, err
		}
		drop := `DROP INDEX IF EXISTS ` + ident(index)
		if constraint != "" {
			drop = fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT IF EXISTS %s`, ident(table), ident(constraint))
		}
		out = append(out, piece{drop: drop, bytes: bytes})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var bytes int64
	if err := conn.QueryRow(ctx, `SELECT pg_table_size($1::regclass)`, ident(table)).Scan(&bytes); err != nil {
		return nil, err
	}
	return append(out, piece{drop: `DROP TABLE IF EXISTS ` + ident(table), bytes: bytes}), nil
}

// dropForeignKeys drops the foreign keys of a detached partition. Dropping
// a table that has one locks the table it refers to (subscriptions,
// connector configs) ACCESS EXCLUSIVE until the drop commits.
func dropForeignKeys(ctx context.Context, tx pgx.Tx, table string) error {
	rows, err := tx.Query(ctx, `SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'`, ident(table))
	if err != nil {
		return err
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT %s`, ident(table), ident(k))); err != nil {
			return err
		}
	}
	return nil
}

// PartitionName is table's partition for the UTC day of at.
func PartitionName(table string, at time.Time) string {
	return table + "_p" + at.UTC().Format("20060102")
}

func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// ParsePeriod reads a retention period: a Go duration ("720h") or a
// number of days ("30d").
func ParsePeriod(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return 0, fmt.Errorf("retention period %q: want a positive number of days, like 30d", s)
		}
		return time.Duration(days) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("retention period %q: want a positive duration (720h) or days (30d)", s)
	}
	return d, nil
}

// Period is a retention period as a command-line flag (pflag.Value).
type Period struct{ D *time.Duration }

func (p Period) String() string {
	if p.D == nil {
		return ""
	}
	if *p.D%day == 0 {
		return fmt.Sprintf("%dd", *p.D/day)
	}
	return p.D.String()
}

// Set parses s with ParsePeriod.
func (p Period) Set(s string) error {
	d, err := ParsePeriod(s)
	if err == nil {
		*p.D = d
	}
	return err
}

// Type names the flag's value in help.
func (Period) Type() string { return "period" }
