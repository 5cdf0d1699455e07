package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// StatsDelta is what a batch of outcomes adds to one subscription's stats;
// the Last* fields describe the batch's newest attempt.
type StatsDelta struct {
	SubscriptionID uuid.UUID
	Delivered      int64
	FailedAttempts int64
	DeadLettered   int64
	// TrailingFailures counts the batch's failed attempts after its last
	// success (all of them, when none succeeded).
	TrailingFailures int
	LastAttemptAt    time.Time
	LastHTTPStatus   *int
	LastError        string
	DeadLetterReason string
	// SecretMissing: the batch found the signing secret missing from Vault.
	SecretMissing bool
	// DestinationDown: why the batch could not reach the queue destination
	// (DestinationUnreachable, DestinationCredentialsMissing); "" if it could.
	DestinationDown string
}

// Why a queue destination is down, as stats and conditions name it.
const (
	DestinationUnreachable        = "DestinationUnreachable"
	DestinationCredentialsMissing = "DestinationCredentialsMissing"
)

// SubscriptionStats is a subscription's delivery health.
type SubscriptionStats struct {
	SubscriptionID uuid.UUID
	Delivered      int64
	FailedAttempts int64
	// DeadLettered counts every delivery ever dead-lettered; DeadLetteredNow
	// those still dead-lettered (not re-triggered, not past retention).
	DeadLettered         int64
	DeadLetteredNow      int64
	Pending              int64
	ConsecutiveFailures  int
	LastAttemptAt        *time.Time
	LastHTTPStatus       *int
	LastError            string
	LastDeadLetterReason string
	// CircuitState is the endpoint's breaker as every replica honours it
	// (endpoint_breakers, sharedCircuitStateSQL): closed, open or half-open.
	CircuitState string
	// SecretMissingSince: the dispatcher has found no signing secret in
	// Vault since then (nil: it has one).
	SecretMissingSince *time.Time
	// DestinationDownSince: the dispatcher has not reached the queue
	// destination since then, for DestinationDownReason (nil: it has).
	DestinationDownSince  *time.Time
	DestinationDownReason string
}

// recordStatsSQL adds a batch's deltas in one statement. The newest
// attempt succeeded when it left no error: that resets consecutive failures.
const recordStatsSQL = `
		INSERT INTO webhook_subscription_stats AS s (subscription_id, delivered_total, failed_attempts_total, dead_lettered_total,
			dead_lettered_now, consecutive_failures, last_attempt_at, last_http_status, last_error, last_dead_letter_reason, secret_missing_since,
			destination_down_since, destination_down_reason, updated_at)
		SELECT u.id, u.delivered, u.failed, u.dead, u.dead, u.trail, u.at, u.http_status, NULLIF(u.err, ''), NULLIF(u.reason, ''),
			CASE WHEN u.missing THEN now() END, CASE WHEN u.down <> '' THEN now() END, NULLIF(u.down, ''), now()
		FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::int[], $6::timestamptz[], $7::int[], $8::text[], $9::text[],
			$10::bool[], $11::text[]) AS u(id, delivered, failed, dead, trail, at, http_status, err, reason, missing, down)
		ON CONFLICT (subscription_id) DO UPDATE SET
			delivered_total = s.delivered_total + EXCLUDED.delivered_total,
			failed_attempts_total = s.failed_attempts_total + EXCLUDED.failed_attempts_total,
			dead_lettered_total = s.dead_lettered_total + EXCLUDED.dead_lettered_total,
			dead_lettered_now = s.dead_lettered_now + EXCLUDED.dead_lettered_now,
			consecutive_failures = CASE
				WHEN EXCLUDED.last_error IS NULL THEN 0
				WHEN EXCLUDED.delivered_total > 0 THEN EXCLUDED.consecutive_failures
				ELSE s.consecutive_failures + EXCLUDED.consecutive_failures END,
			last_attempt_at = GREATEST(s.last_attempt_at, EXCLUDED.last_attempt_at),
			last_http_status = COALESCE(EXCLUDED.last_http_status, s.last_http_status),
			last_error = EXCLUDED.last_error,
			last_dead_letter_reason = COALESCE(EXCLUDED.last_dead_letter_reason, s.last_dead_letter_reason),
			secret_missing_since = CASE
				WHEN EXCLUDED.secret_missing_since IS NOT NULL THEN COALESCE(s.secret_missing_since, EXCLUDED.secret_missing_since)
				WHEN EXCLUDED.last_attempt_at IS NOT NULL THEN NULL
				ELSE s.secret_missing_since END,
			-- The outage's start is kept while it lasts (its reason may
			-- change); an attempt that reached the destination ends it.
			destination_down_since = CASE
				WHEN EXCLUDED.destination_down_since IS NOT NULL THEN COALESCE(s.destination_down_since, EXCLUDED.destination_down_since)
				WHEN EXCLUDED.last_attempt_at IS NOT NULL THEN NULL
				ELSE s.destination_down_since END,
			destination_down_reason = CASE
				WHEN EXCLUDED.destination_down_since IS NOT NULL THEN EXCLUDED.destination_down_reason
				WHEN EXCLUDED.last_attempt_at IS NOT NULL THEN NULL
				ELSE s.destination_down_reason END,
			updated_at = now()`

// RecordOutcomesAndStats writes outcomes and the stats they add up to in
// one transaction, so health never disagrees with the deliveries.
func (s *Store) RecordOutcomesAndStats(ctx context.Context, outcomes []Outcome, deltas []StatsDelta) error {
	_, err := s.RecordOutcomeBatch(ctx, outcomes, func(map[uuid.UUID]bool) []StatsDelta { return deltas }, nil)
	return err
}

// RecordOutcomeBatch writes outcomes and the stats that deltasFor makes of
// those written (it is told which were fenced off: their claim was lost,
// so another replica owns what became of them) and removes, in the same
// transaction, outbox notices Kafka has taken since the last batch: the
// hot path then commits once per batch, not twice. It returns the
// outcomes fenced off.
func (s *Store) RecordOutcomeBatch(ctx context.Context, outcomes []Outcome, deltasFor func(stale map[uuid.UUID]bool) []StatsDelta,
	sentNotices []uuid.UUID) (map[uuid.UUID]bool, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("record delivery outcomes: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if len(sentNotices) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM outcome_outbox WHERE outcome_id = ANY($1)`, sentNotices); err != nil {
			return nil, fmt.Errorf("remove sent outcome notices: %w", err)
		}
	}
	stale, err := s.recordOutcomesTx(ctx, tx, outcomes)
	if err != nil {
		return nil, err
	}
	deltas := deltasFor(stale)
	if len(deltas) > 0 {
		n := len(deltas)
		ids := make([]uuid.UUID, n)
		delivered, failed, dead := make([]int64, n), make([]int64, n), make([]int64, n)
		trailing := make([]int32, n)
		at := make([]*time.Time, n) // NULL: the batch made no attempt for it
		httpStatus := make([]*int32, n)
		errs, reasons := make([]string, n), make([]string, n)
		missing, down := make([]bool, n), make([]string, n)
		for i, d := range deltas {
			ids[i], delivered[i], failed[i], dead[i] = d.SubscriptionID, d.Delivered, d.FailedAttempts, d.DeadLettered
			trailing[i], errs[i], reasons[i], missing[i] = int32(d.TrailingFailures), text(d.LastError), text(d.DeadLetterReason), d.SecretMissing
			down[i] = d.DestinationDown
			if !d.LastAttemptAt.IsZero() {
				at[i] = &d.LastAttemptAt
			}
			if d.LastHTTPStatus != nil {
				v := int32(*d.LastHTTPStatus)
				httpStatus[i] = &v
			}
		}
		if _, err := tx.Exec(ctx, recordStatsSQL, ids, delivered, failed, dead, trailing, at, httpStatus, errs, reasons, missing, down); err != nil {
			return nil, fmt.Errorf("record delivery stats: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("record delivery outcomes: %w", err)
	}
	return stale, nil
}

// SubscriptionStatsAll reads every subscription's stats with its count of
// deliveries still to do and its shared breaker's state (read here, not
// copied by each replica, so that every reader sees the one state all
// replicas honour).
func (s *Store) SubscriptionStatsAll(ctx context.Context) (map[uuid.UUID]SubscriptionStats, error) {
	rows, err := s.pool.Query(ctx, `
		WITH open AS (
			SELECT subscription_id, count(*) AS pending FROM webhook_deliveries
			WHERE status IN ('PENDING', 'FAILED') GROUP BY subscription_id)
		SELECT COALESCE(s.subscription_id, o.subscription_id, b.subscription_id), COALESCE(s.delivered_total, 0), COALESCE(s.failed_attempts_total, 0),
			COALESCE(s.dead_lettered_total, 0), COALESCE(s.dead_lettered_now, 0), COALESCE(o.pending, 0), COALESCE(s.consecutive_failures, 0),
			s.last_attempt_at, s.last_http_status, COALESCE(s.last_error, ''), COALESCE(s.last_dead_letter_reason, ''),
			`+sharedCircuitStateSQL+`, s.secret_missing_since,
			s.destination_down_since, COALESCE(s.destination_down_reason, '')
		FROM webhook_subscription_stats s FULL OUTER JOIN open o ON o.subscription_id = s.subscription_id
		FULL OUTER JOIN endpoint_breakers b ON b.subscription_id = COALESCE(s.subscription_id, o.subscription_id)`)
	if err != nil {
		return nil, fmt.Errorf("read delivery stats: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]SubscriptionStats{}
	for rows.Next() {
		var st SubscriptionStats
		var hs *int32
		if err := rows.Scan(&st.SubscriptionID, &st.Delivered, &st.FailedAttempts, &st.DeadLettered, &st.DeadLetteredNow, &st.Pending,
			&st.ConsecutiveFailures, &st.LastAttemptAt, &hs, &st.LastError, &st.LastDeadLetterReason, &st.CircuitState, &st.SecretMissingSince,
			&st.DestinationDownSince, &st.DestinationDownReason); err != nil {
			return nil, fmt.Errorf("read delivery stats: %w", err)
		}
		if hs != nil {
			v := int(*hs)
			st.LastHTTPStatus = &v
		}
		out[st.SubscriptionID] = st
	}
	return out, rows.Err()
}
