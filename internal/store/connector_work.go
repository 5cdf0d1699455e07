package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Sync-log directions and statuses, as connector_sync_log constrains them.
const (
	SyncInbound   = "INBOUND"
	SyncOutbound  = "OUTBOUND"
	SyncRunning   = "RUNNING"
	SyncSucceeded = "SUCCEEDED"
	SyncPartial   = "PARTIAL"
	SyncFailed    = "FAILED"
)

// NewConnectorDelivery is an event to hand to one connector.
type NewConnectorDelivery struct {
	ID        uuid.UUID
	ConfigID  uuid.UUID
	EventID   uuid.UUID
	StoreID   string
	EventType string
	Payload   []byte
	// EntityKey names what the event changes at the marketplace (a SKU, an
	// order): one entity's events are handed over one at a time, in the
	// order they arrived. Empty: no order to keep.
	EntityKey string
	// EventTime is the event's time, the partition key (see PartitionTime).
	EventTime time.Time
	// Trace is the context its calls continue (empty: tracing off).
	Trace TraceContext
}

// InsertConnectorDeliveries queues events for connectors in one statement,
// due now, skipping (config, event, event time) already queued. Payloads
// are kept as InsertDeliveries keeps them (in the same table, once).
func (s *Store) InsertConnectorDeliveries(ctx context.Context, ds []NewConnectorDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	ids, configs, events := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
	stores, types, entities := make([]string, n), make([]string, n), make([]*string, n)
	times, digests := make([]time.Time, n), make([][]byte, n)
	parents, states := make([]*string, n), make([]*string, n)
	set := payloadSet{}
	for i, d := range ds {
		ids[i], configs[i], events[i], stores[i], types[i] = d.ID, d.ConfigID, d.EventID, text(d.StoreID), text(d.EventType)
		entities[i], times[i] = textPtr(d.EntityKey), PartitionTime(d.EventTime)
		parents[i], states[i] = textPtr(d.Trace.Parent), textPtr(d.Trace.State)
		digests[i] = set.add(d.Payload, times[i])
	}
	docs := set.rows()
	// WITH ORDINALITY keeps the batch's order in seq: the order of arrival.
	err := carefully(func(careful bool) error {
		_, err := s.pool.Exec(ctx, `
			WITH `+insertPayloadsSQL(10, "$9")+`
			INSERT INTO connector_deliveries (delivery_id, config_id, event_id, store_id, event_type, event_time, payload_digest,
				status, next_retry_at, entity_key, trace_parent, trace_state)
			SELECT d.id, d.config, d.event, d.store, d.type, d.at, d.digest, 'PENDING', now(), d.entity, d.parent, d.state
			FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[], $8::text[],
				$14::text[], $15::text[])
				WITH ORDINALITY AS d(id, config, event, store, type, at, digest, entity, parent, state, n)
			ORDER BY d.n
			ON CONFLICT (config_id, event_id, event_time) DO NOTHING`, ids, configs, events, stores, types, times, digests, entities, careful,
			docs.digests, docs.times, docs.raw, docs.copies, parents, states)
		return err
	})
	if err != nil {
		return fmt.Errorf("persist connector deliveries: %w", err)
	}
	return nil
}

// ConnectorDelivery is a claimed connector delivery with its connector.
type ConnectorDelivery struct {
	ID        uuid.UUID
	ConfigID  uuid.UUID
	EventID   uuid.UUID
	StoreID   string
	EventType string
	Payload   []byte
	// EventTime is the row's partition key, as Delivery.EventTime.
	EventTime     time.Time
	CreatedAt     time.Time
	Attempts      int
	ConnectorType string
	Settings      json.RawMessage
	ConfigActive  bool
	// Seq is the order of arrival; ClaimToken fences the outcome.
	Seq        int64
	ClaimToken uuid.UUID
	// Trace is the trace context its calls continue, as persisted.
	Trace TraceContext
}

// ClaimConnectorDeliveries claims up to limit due deliveries of active
// connectors under a fresh claim for lease (FOR UPDATE SKIP LOCKED, so
// replicas share them), in order of arrival; a paused connector's events
// wait untouched. An event waits, unclaimed, while an older event for the
// same entity is unfinished (wherever it is held), so a marketplace sees
// one entity's updates in event order: an older absolute quantity never
// lands after a newer one.
func (s *Store) ClaimConnectorDeliveries(ctx context.Context, limit int, lease time.Duration) ([]ConnectorDelivery, error) {
	claim := NewClaim(lease)
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT d.delivery_id, d.event_time FROM connector_deliveries d JOIN connector_configs c USING (config_id)
			WHERE d.status IN ('PENDING', 'FAILED') AND d.next_retry_at <= now()
			  AND (d.claimed_until IS NULL OR d.claimed_until < now()) AND c.is_active
			  AND (d.entity_key IS NULL OR NOT EXISTS (
				SELECT 1 FROM connector_deliveries o WHERE o.config_id = d.config_id AND o.entity_key = d.entity_key
				  AND o.status IN ('PENDING', 'FAILED') AND o.seq < d.seq))
			ORDER BY d.next_retry_at, d.seq
			LIMIT $1
			FOR UPDATE OF d SKIP LOCKED)
		UPDATE connector_deliveries d SET claimed_until = now() + $2 * interval '1 millisecond', claim_token = $3
		FROM due, connector_configs c
		WHERE d.delivery_id = due.delivery_id AND d.event_time = due.event_time AND c.config_id = d.config_id
		RETURNING d.delivery_id, d.event_time, d.config_id, d.event_id, d.store_id, d.event_type, `+rawPayloadSQL("d")+`, d.created_at,
			d.attempt_number, c.connector_type, c.settings::text, c.is_active, d.seq,
			COALESCE(d.trace_parent, ''), COALESCE(d.trace_state, '')`, limit, claim.Lease.Milliseconds(), claim.Token)
	if err != nil {
		return nil, fmt.Errorf("claim connector deliveries: %w", err)
	}
	claimed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ConnectorDelivery, error) {
		var d ConnectorDelivery
		var settings string
		err := row.Scan(&d.ID, &d.EventTime, &d.ConfigID, &d.EventID, &d.StoreID, &d.EventType, &d.Payload, &d.CreatedAt, &d.Attempts,
			&d.ConnectorType, &settings, &d.ConfigActive, &d.Seq, &d.Trace.Parent, &d.Trace.State)
		d.Settings, d.ClaimToken = json.RawMessage(settings), claim.Token
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim connector deliveries: %w", err)
	}
	// RETURNING keeps no order; arrival order is what adapters get.
	slices.SortFunc(claimed, func(a, b ConnectorDelivery) int { return cmp.Compare(a.Seq, b.Seq) })
	return claimed, nil
}

// ConnectorOutcome is what became of a connector delivery.
type ConnectorOutcome struct {
	DeliveryID uuid.UUID
	EventTime  time.Time
	ConfigID   uuid.UUID
	Status     string
	Attempts   int
	// RetryIn sets next_retry_at from the database's clock; nil clears it.
	RetryIn *time.Duration
	Error   string
	// Attempted says the adapter was called (the outcome counts in the
	// connector's stats); false for events that only wait.
	Attempted bool
	// ClaimToken fences the outcome as Outcome.ClaimToken does.
	ClaimToken uuid.UUID
	// Attempt, when set, is the adapter call this outcome comes of,
	// recorded in connector_delivery_attempts (its number is Attempts, its
	// outcome Status, its error Error). Nil: the adapter was not called
	// for it.
	Attempt *ConnectorAttempt
}

// ConnectorAttempt is one call of an adapter for a delivery: when and by
// which replica, and what the marketplace answered when the adapter's
// error carries it (a non-2xx answer's status and first bytes).
type ConnectorAttempt struct {
	Attempt
	HTTPStatus *int
	Answer     *string
}

// AttemptError bounds the error kept with each connector attempt, in
// bytes (last_error keeps it whole).
const AttemptError = 1024

// SyncRun is one connector_sync_log row.
type SyncRun struct {
	ConfigID     uuid.UUID
	Direction    string
	EntityType   string
	RecordCount  int
	Status       string
	ErrorSummary string
	StartedAt    time.Time
	FinishedAt   time.Time
}

// RecordConnectorOutcomes writes a batch's outcomes, its sync-log rows and
// the connectors' counts in one transaction. Outcomes whose claim was lost
// are not written, nor counted.
func (s *Store) RecordConnectorOutcomes(ctx context.Context, outcomes []ConnectorOutcome, runs []SyncRun) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		n := len(outcomes)
		ids, configs, times := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]time.Time, n)
		statuses, errs := make([]string, n), make([]*string, n)
		attempts := make([]int32, n)
		attempted := make([]bool, n)
		retryMS := make([]*int64, n)
		tokens := make([]uuid.UUID, n)
		for i, o := range outcomes {
			ids[i], configs[i], statuses[i], attempts[i], attempted[i] = o.DeliveryID, o.ConfigID, o.Status, int32(o.Attempts), o.Attempted
			tokens[i], times[i] = o.ClaimToken, o.EventTime
			if o.RetryIn != nil {
				v := o.RetryIn.Milliseconds()
				retryMS[i] = &v
			}
			errs[i] = textPtr(o.Error)
		}
		if n > 0 {
			if _, err := tx.Exec(ctx, `
				WITH u AS (
					SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::uuid[], $7::uuid[], $8::bool[], $9::timestamptz[])
						AS u(id, status, attempts, retry_ms, err, token, config, attempted, at)),
				applied AS (
					UPDATE connector_deliveries d SET status = u.status, attempt_number = u.attempts,
						next_retry_at = CASE WHEN u.retry_ms IS NULL THEN NULL ELSE now() + u.retry_ms * interval '1 millisecond' END,
						delivered_at = CASE WHEN u.status = 'DELIVERED' THEN now() ELSE d.delivered_at END,
						last_error = u.err, claimed_until = NULL, claim_token = NULL, updated_at = now()
					FROM u WHERE d.delivery_id = u.id AND d.event_time = u.at AND `+fenceSQL+`
					RETURNING d.delivery_id)
				INSERT INTO connector_stats AS s (config_id, outbound_delivered, outbound_failed, outbound_dead_lettered,
					outbound_dead_lettered_now, updated_at)
				SELECT u.config, count(*) FILTER (WHERE u.status = 'DELIVERED'), count(*) FILTER (WHERE u.status = 'FAILED'),
					count(*) FILTER (WHERE u.status = 'DEAD_LETTERED'), count(*) FILTER (WHERE u.status = 'DEAD_LETTERED'), now()
				FROM u JOIN applied ON applied.delivery_id = u.id
				WHERE u.attempted
				GROUP BY u.config
				ON CONFLICT (config_id) DO UPDATE SET
					outbound_delivered = s.outbound_delivered + EXCLUDED.outbound_delivered,
					outbound_failed = s.outbound_failed + EXCLUDED.outbound_failed,
					outbound_dead_lettered = s.outbound_dead_lettered + EXCLUDED.outbound_dead_lettered,
					outbound_dead_lettered_now = s.outbound_dead_lettered_now + EXCLUDED.outbound_dead_lettered_now,
					updated_at = now()`, ids, statuses, attempts, retryMS, errs, tokens, configs, attempted, times); err != nil {
				return fmt.Errorf("record connector outcomes: %w", err)
			}
		}
		if err := insertConnectorAttempts(ctx, tx, outcomes); err != nil {
			return err
		}
		return insertSyncRuns(ctx, tx, runs)
	})
}

// insertConnectorAttempts records the outcomes' attempts in one statement.
// Those fenced off are recorded too: the marketplace saw them all the same.
func insertConnectorAttempts(ctx context.Context, db querier, outcomes []ConnectorOutcome) error {
	var r attemptRows
	for _, o := range outcomes {
		if a := o.Attempt; a != nil {
			r.add(o.DeliveryID, o.EventTime, o.Attempts, a.Attempt, a.HTTPStatus, a.Answer, truncateUTF8(o.Error, AttemptError), o.Status)
		}
	}
	if len(r.ids) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `
		INSERT INTO connector_delivery_attempts (delivery_id, event_time, attempt_number, started_at, duration_ms, status, http_status,
			response_excerpt, response_excerpt_sanitised, error, replica)
		SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::timestamptz[], $5::int[], $6::text[], $7::int[],
			$8::text[], $9::bool[], $10::text[], $11::text[])`,
		r.ids, r.times, r.numbers, r.starts, r.durations, r.statuses, r.httpStatuses, r.excerpts, r.sanitised, r.errs, r.replicas)
	if err != nil {
		return fmt.Errorf("record connector delivery attempts: %w", err)
	}
	return nil
}

// ConnectorDeliveryAttempts lists a connector delivery's recorded attempts,
// oldest first.
func (s *Store) ConnectorDeliveryAttempts(ctx context.Context, id uuid.UUID, eventTime time.Time) ([]DeliveryAttempt, error) {
	return s.attempts(ctx, "connector_delivery_attempts", "status", id, eventTime)
}

func insertSyncRuns(ctx context.Context, tx pgx.Tx, runs []SyncRun) error {
	if len(runs) == 0 {
		return nil
	}
	n := len(runs)
	configs := make([]uuid.UUID, n)
	dirs, entities, statuses := make([]string, n), make([]string, n), make([]string, n)
	counts := make([]int32, n)
	errs := make([]*string, n)
	started, finished := make([]time.Time, n), make([]time.Time, n)
	for i, r := range runs {
		configs[i], dirs[i], entities[i], statuses[i], counts[i] = r.ConfigID, r.Direction, text(r.EntityType), r.Status, int32(r.RecordCount)
		started[i], finished[i], errs[i] = r.StartedAt, r.FinishedAt, textPtr(r.ErrorSummary)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO connector_sync_log (config_id, direction, entity_type, record_count, status, error_summary, started_at, finished_at)
		SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[])`,
		configs, dirs, entities, counts, statuses, errs, started, finished)
	if err != nil {
		return fmt.Errorf("write connector sync log: %w", err)
	}
	return nil
}

// PollJob is a connector claimed for one poll run.
type PollJob struct {
	ConfigID            uuid.UUID
	StoreID             string
	ConnectorType       string
	Settings            json.RawMessage
	Cursor              string
	Interval            time.Duration
	ConsecutiveFailures int
	// RunID is the RUNNING connector_sync_log row opened for the run.
	RunID     int64
	StartedAt time.Time
	// ClaimToken fences the run's writes to the poll state.
	ClaimToken uuid.UUID
}

// ClaimDuePolls claims up to limit active connectors of the given types
// whose next poll is due, for lease, and opens a RUNNING sync-log row for
// each. A claim makes the replica the connector's only poller until it
// finishes or the lease lapses.
func (s *Store) ClaimDuePolls(ctx context.Context, types []string, limit int, lease time.Duration) ([]PollJob, error) {
	var jobs []PollJob
	claim := NewClaim(lease)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO connector_poll_state (config_id)
			SELECT config_id FROM connector_configs WHERE is_active AND connector_type = ANY($1)
			ON CONFLICT (config_id) DO NOTHING`, types); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			WITH due AS (
				SELECT p.config_id FROM connector_poll_state p JOIN connector_configs c USING (config_id)
				WHERE c.is_active AND c.connector_type = ANY($1) AND p.next_poll_at <= now()
				  AND (p.claimed_until IS NULL OR p.claimed_until < now())
				ORDER BY p.next_poll_at
				LIMIT $2
				FOR UPDATE OF p SKIP LOCKED)
			UPDATE connector_poll_state p SET claimed_until = now() + $3 * interval '1 millisecond', claim_token = $4
			FROM due, connector_configs c
			WHERE p.config_id = due.config_id AND c.config_id = p.config_id
			RETURNING p.config_id, c.store_id, c.connector_type, c.settings::text, p.poll_cursor, c.poll_interval_seconds,
				p.consecutive_failures, now()`, types, limit, claim.Lease.Milliseconds(), claim.Token)
		if err != nil {
			return err
		}
		jobs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (PollJob, error) {
			var j PollJob
			var settings string
			var interval int32
			err := row.Scan(&j.ConfigID, &j.StoreID, &j.ConnectorType, &settings, &j.Cursor, &interval, &j.ConsecutiveFailures, &j.StartedAt)
			j.Settings, j.Interval, j.ClaimToken = json.RawMessage(settings), time.Duration(interval)*time.Second, claim.Token
			return j, err
		})
		if err != nil {
			return err
		}
		for i := range jobs {
			if err := tx.QueryRow(ctx, `INSERT INTO connector_sync_log (config_id, direction, entity_type, status, started_at)
				VALUES ($1, 'INBOUND', 'poll', 'RUNNING', $2) RETURNING sync_id`, jobs[i].ConfigID, jobs[i].StartedAt).Scan(&jobs[i].RunID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim due polls: %w", err)
	}
	return jobs, nil
}

// FinishPoll closes a poll run: its sync-log row, the cursor to resume
// from (unchanged when empty) and when to poll next; it releases the claim.
// A run whose claim another replica has taken since records its sync-log
// row only: the poll state is the new holder's.
func (s *Store) FinishPoll(ctx context.Context, job PollJob, run SyncRun, cursor string, next time.Duration) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE connector_sync_log SET entity_type = $2, record_count = $3, status = $4, error_summary = $5,
			finished_at = now() WHERE sync_id = $1 AND started_at = $6`, job.RunID, text(run.EntityType), run.RecordCount, run.Status,
			textPtr(run.ErrorSummary), job.StartedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE connector_poll_state SET
			poll_cursor = CASE WHEN $2 = '' THEN poll_cursor ELSE $2 END,
			next_poll_at = now() + $3 * interval '1 millisecond', claimed_until = NULL,
			consecutive_failures = CASE WHEN $4 THEN consecutive_failures + 1 ELSE 0 END,
			claim_token = NULL
			WHERE config_id = $1 AND claim_token = $5`, job.ConfigID, text(cursor), next.Milliseconds(), run.Status == SyncFailed, job.ClaimToken)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish poll of %s: %w", job.ConfigID, err)
	}
	return nil
}

// SyncRuns lists a connector's newest sync-log rows, newest first.
func (s *Store) SyncRuns(ctx context.Context, configID uuid.UUID, limit int) ([]SyncRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT config_id, direction, entity_type, record_count, status, COALESCE(error_summary, ''),
		started_at, COALESCE(finished_at, started_at) FROM connector_sync_log WHERE config_id = $1
		ORDER BY started_at DESC, sync_id DESC LIMIT $2`, configID, limit)
	if err != nil {
		return nil, fmt.Errorf("list sync runs: %w", err)
	}
	return pgx.CollectRows(rows, scanSyncRun)
}

func scanSyncRun(row pgx.CollectableRow) (SyncRun, error) {
	var r SyncRun
	err := row.Scan(&r.ConfigID, &r.Direction, &r.EntityType, &r.RecordCount, &r.Status, &r.ErrorSummary, &r.StartedAt, &r.FinishedAt)
	return r, err
}

// RequeueDeadLetteredConnector puts a connector's dead-lettered events
// (those updated at or after since, when given) back to PENDING with a
// fresh attempt budget, and lowers its count of dead letters by as many in
// the same statement. It returns how many.
func (s *Store) RequeueDeadLetteredConnector(ctx context.Context, configID uuid.UUID, since *time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		WITH requeued AS (
			UPDATE connector_deliveries
			SET status = 'PENDING', attempt_number = 0, next_retry_at = now(), claimed_until = NULL, claim_token = NULL, last_error = NULL, updated_at = now()
			WHERE config_id = $1 AND status = 'DEAD_LETTERED' AND ($2::timestamptz IS NULL OR updated_at >= $2)
			RETURNING config_id),
		lowered AS (
			UPDATE connector_stats s SET outbound_dead_lettered_now = greatest(0, s.outbound_dead_lettered_now - r.n)
			FROM (SELECT count(*) AS n FROM requeued) r
			WHERE s.config_id = $1 AND r.n > 0)
		SELECT count(*) FROM requeued`, configID, since).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("requeue dead-lettered connector events: %w", err)
	}
	return n, nil
}

// ConnectorDeliveryStatus reads one connector delivery's state.
func (s *Store) ConnectorDeliveryStatus(ctx context.Context, configID, eventID uuid.UUID) (status string, attempts int, lastError string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT status, attempt_number, COALESCE(last_error, '') FROM connector_deliveries
		WHERE config_id = $1 AND event_id = $2`, configID, eventID).Scan(&status, &attempts, &lastError)
	if err != nil {
		err = fmt.Errorf("connector delivery %s/%s: %w", configID, eventID, err)
	}
	return
}

// AbandonedConnectorDelivery is a waiting connector event whose connector
// was deleted, or has been paused for longer than the bound.
type AbandonedConnectorDelivery struct {
	DeliveryID uuid.UUID
	EventTime  time.Time
	ConfigID   uuid.UUID
	Attempts   int
	Why        string
	ClaimToken uuid.UUID
}

// ClaimAbandonedConnectorDeliveries claims, for lease, up to limit waiting
// events of deleted connectors and of connectors paused with events older
// than pausedMaxAge.
func (s *Store) ClaimAbandonedConnectorDeliveries(ctx context.Context, limit int, pausedMaxAge, lease time.Duration) ([]AbandonedConnectorDelivery, error) {
	claim := NewClaim(lease)
	rows, err := s.pool.Query(ctx, `
		WITH gone AS (
			SELECT d.delivery_id, d.event_time, c.deleted_at IS NOT NULL AS deleted FROM connector_configs c
			JOIN connector_deliveries d ON d.config_id = c.config_id AND d.status IN ('PENDING', 'FAILED')
			WHERE NOT c.is_active AND (c.deleted_at IS NOT NULL OR d.created_at < now() - $2 * interval '1 millisecond')
			  AND (d.claimed_until IS NULL OR d.claimed_until < now())
			LIMIT $1
			FOR UPDATE OF d SKIP LOCKED)
		UPDATE connector_deliveries d SET claimed_until = now() + $3 * interval '1 millisecond', claim_token = $4
		FROM gone WHERE d.delivery_id = gone.delivery_id AND d.event_time = gone.event_time
		RETURNING d.delivery_id, d.event_time, d.config_id, d.attempt_number, gone.deleted`, limit, pausedMaxAge.Milliseconds(), claim.Lease.Milliseconds(), claim.Token)
	if err != nil {
		return nil, fmt.Errorf("claim abandoned connector events: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (AbandonedConnectorDelivery, error) {
		var a AbandonedConnectorDelivery
		var deleted bool
		err := row.Scan(&a.DeliveryID, &a.EventTime, &a.ConfigID, &a.Attempts, &deleted)
		a.ClaimToken = claim.Token
		a.Why = "the connector was deleted"
		if !deleted {
			a.Why = fmt.Sprintf("the connector was paused for longer than %v", pausedMaxAge)
		}
		return a, err
	})
}
