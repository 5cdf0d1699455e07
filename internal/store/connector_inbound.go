package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// InboundEvent is a verified provider webhook, stored once per provider
// event id and kept (never deleted).
type InboundEvent struct {
	EventID         uuid.UUID
	ConfigID        uuid.UUID
	ProviderEventID string
	EventType       string
	StoreID         string
	Payload         []byte
	ReceivedAt      time.Time
	Attempts        int
}

// inboundLock is the class of the advisory locks that make one writer at a
// time store a given provider event.
const inboundLock = 0x696e62 // "inb"

// InsertInboundEvent stores e unless its provider event id was seen for
// the connector before, and counts it as accepted or duplicate. The caller
// owns publishing an inserted event for lease. e.ReceivedAt (now, when
// zero) is its partition key; the stored event carries it.
//
// Providers retry for days, so the dedup must hold across partitions: the
// insert runs under a transaction-scoped advisory lock on the provider
// event and only if no partition holds it already. The lock is taken in a
// statement of its own, so the check's snapshot sees what a writer that
// held the lock before committed.
func (s *Store) InsertInboundEvent(ctx context.Context, e InboundEvent, lease time.Duration) (inserted bool, err error) {
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = time.Now()
	}
	at := PartitionTime(e.ReceivedAt)
	providerID := key(e.ProviderEventID)
	raw, copied := e.Payload, JSONBCopy(e.Payload)
	err = carefully(func(careful bool) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2::text || '/' || $3))`,
				int32(inboundLock), e.ConfigID, providerID); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO connector_inbound_events (event_id, config_id, provider_event_id, event_type, store_id, payload, raw_payload,
				payload_sanitised, status, claimed_until, received_at)
			SELECT $1, $2, $3, $4, $5, COALESCE(j.doc, 'null'::jsonb), d.raw, d.copy IS NOT NULL OR j.doc IS NULL,
				'RECEIVED', now() + $8 * interval '1 millisecond', $10
			FROM (SELECT $6::bytea AS raw, $7::text AS copy) d
			CROSS JOIN LATERAL (SELECT `+jsonbDocSQL("$9")+` AS doc) j
			WHERE NOT EXISTS (SELECT 1 FROM connector_inbound_events o WHERE o.config_id = $2 AND o.provider_event_id = $3)
			ON CONFLICT DO NOTHING
			RETURNING 1),
		counted AS (
			INSERT INTO connector_stats AS s (config_id, inbound_accepted, inbound_duplicates)
			SELECT $2, (SELECT count(*) FROM ins), 1 - (SELECT count(*) FROM ins)
			ON CONFLICT (config_id) DO UPDATE SET inbound_accepted = s.inbound_accepted + EXCLUDED.inbound_accepted,
				inbound_duplicates = s.inbound_duplicates + EXCLUDED.inbound_duplicates, updated_at = now())
		SELECT count(*) = 1 FROM ins`,
				e.EventID, e.ConfigID, providerID, text(e.EventType), text(e.StoreID), raw, copied,
				lease.Milliseconds(), careful, at).Scan(&inserted)
		})
	})
	if err != nil {
		return false, fmt.Errorf("store inbound event: %w", err)
	}
	return inserted, nil
}

// CountInboundRejected counts a webhook that failed verification, and why.
func (s *Store) CountInboundRejected(ctx context.Context, configID uuid.UUID, reason string) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO connector_stats AS s (config_id, inbound_rejected, last_rejected_at, last_reject_reason)
		VALUES ($1, 1, now(), $2)
		ON CONFLICT (config_id) DO UPDATE SET inbound_rejected = s.inbound_rejected + 1, last_rejected_at = now(),
			last_reject_reason = EXCLUDED.last_reject_reason, updated_at = now()`, configID, text(reason))
	if err != nil {
		return fmt.Errorf("count rejected webhook: %w", err)
	}
	return nil
}

// inboundKeys are the ids and partition keys of stored events.
func inboundKeys(events []InboundEvent) (ids []uuid.UUID, times []time.Time) {
	ids, times = make([]uuid.UUID, len(events)), make([]time.Time, len(events))
	for i, e := range events {
		ids[i], times[i] = e.EventID, PartitionTime(e.ReceivedAt)
	}
	return ids, times
}

// MarkInboundPublished records that the stored events reached Kafka.
func (s *Store) MarkInboundPublished(ctx context.Context, events []InboundEvent) error {
	ids, times := inboundKeys(events)
	_, err := s.pool.Exec(ctx, `UPDATE connector_inbound_events e SET status = 'PUBLISHED', published_at = now(), claimed_until = NULL,
		attempts = attempts + 1, last_error = NULL FROM unnest($1::uuid[], $2::timestamptz[]) AS k(id, at)
		WHERE e.event_id = k.id AND e.received_at = k.at`, ids, times)
	if err != nil {
		return fmt.Errorf("mark inbound events published: %w", err)
	}
	return nil
}

// InboundPublishFailed schedules another try for stored events Kafka did not take.
func (s *Store) InboundPublishFailed(ctx context.Context, events []InboundEvent, reason string, retryIn time.Duration) error {
	ids, times := inboundKeys(events)
	_, err := s.pool.Exec(ctx, `UPDATE connector_inbound_events e SET attempts = attempts + 1, last_error = $2, claimed_until = NULL,
		next_attempt_at = now() + $3 * interval '1 millisecond' FROM unnest($1::uuid[], $4::timestamptz[]) AS k(id, at)
		WHERE e.event_id = k.id AND e.received_at = k.at`, ids, text(reason), retryIn.Milliseconds(), times)
	if err != nil {
		return fmt.Errorf("schedule inbound publish retry: %w", err)
	}
	return nil
}

// ClaimUnpublishedInbound claims stored events not yet on Kafka whose next
// try is due (including ones a crashed replica held), for lease.
func (s *Store) ClaimUnpublishedInbound(ctx context.Context, limit int, lease time.Duration) ([]InboundEvent, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT event_id, received_at FROM connector_inbound_events
			WHERE status = 'RECEIVED' AND next_attempt_at <= now() AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE connector_inbound_events e SET claimed_until = now() + $2 * interval '1 millisecond'
		FROM due WHERE e.event_id = due.event_id AND e.received_at = due.received_at
		RETURNING e.event_id, e.config_id, e.provider_event_id, e.event_type, e.store_id,
			COALESCE(e.raw_payload, convert_to(e.payload::text, 'UTF8')), e.received_at, e.attempts`,
		limit, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim unpublished inbound events: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (InboundEvent, error) {
		var e InboundEvent
		err := row.Scan(&e.EventID, &e.ConfigID, &e.ProviderEventID, &e.EventType, &e.StoreID, &e.Payload, &e.ReceivedAt, &e.Attempts)
		return e, err
	})
}

// InboundEventCounts reads how many events a connector stored and published.
func (s *Store) InboundEventCounts(ctx context.Context, configID uuid.UUID) (stored, published int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'PUBLISHED') FROM connector_inbound_events
		WHERE config_id = $1`, configID).Scan(&stored, &published)
	if err != nil {
		err = fmt.Errorf("count inbound events: %w", err)
	}
	return
}

// ConnectorHealth is what the manager reports on a ConnectorConfig's status.
type ConnectorHealth struct {
	ConfigID       uuid.UUID
	LastSync       *SyncRun
	Pending        int64
	Delivered      int64
	FailedAttempts int64
	// DeadLettered counts every event ever given up on; DeadLetteredNow
	// those still dead-lettered (not re-triggered, not past retention).
	DeadLettered      int64
	DeadLetteredNow   int64
	InboundAccepted   int64
	InboundDuplicates int64
	InboundRejected   int64
	LastRejectedAt    *time.Time
	LastRejectReason  string
}

// ConnectorHealths reads every connector's newest sync run, queue and
// counts in one round trip.
func (s *Store) ConnectorHealths(ctx context.Context) (map[uuid.UUID]ConnectorHealth, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.config_id,
			l.direction, l.entity_type, l.record_count, l.status, COALESCE(l.error_summary, ''), l.started_at, COALESCE(l.finished_at, l.started_at),
			(SELECT count(*) FROM connector_deliveries d WHERE d.config_id = c.config_id AND d.status IN ('PENDING', 'FAILED')),
			COALESCE(s.outbound_delivered, 0), COALESCE(s.outbound_failed, 0), COALESCE(s.outbound_dead_lettered, 0),
			COALESCE(s.outbound_dead_lettered_now, 0),
			COALESCE(s.inbound_accepted, 0), COALESCE(s.inbound_duplicates, 0), COALESCE(s.inbound_rejected, 0),
			s.last_rejected_at, COALESCE(s.last_reject_reason, '')
		FROM connector_configs c
		LEFT JOIN connector_stats s USING (config_id)
		LEFT JOIN LATERAL (SELECT * FROM connector_sync_log l WHERE l.config_id = c.config_id
			ORDER BY l.started_at DESC, l.sync_id DESC LIMIT 1) l ON true
		WHERE c.is_active`)
	if err != nil {
		return nil, fmt.Errorf("read connector health: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]ConnectorHealth{}
	for rows.Next() {
		var h ConnectorHealth
		var dir, entity, status, summary *string
		var count *int32
		var started, finished *time.Time
		if err := rows.Scan(&h.ConfigID, &dir, &entity, &count, &status, &summary, &started, &finished, &h.Pending,
			&h.Delivered, &h.FailedAttempts, &h.DeadLettered, &h.DeadLetteredNow, &h.InboundAccepted, &h.InboundDuplicates, &h.InboundRejected,
			&h.LastRejectedAt, &h.LastRejectReason); err != nil {
			return nil, fmt.Errorf("read connector health: %w", err)
		}
		if dir != nil {
			h.LastSync = &SyncRun{ConfigID: h.ConfigID, Direction: *dir, EntityType: *entity, RecordCount: int(*count), Status: *status,
				ErrorSummary: *summary, StartedAt: *started, FinishedAt: *finished}
		}
		out[h.ConfigID] = h
	}
	return out, rows.Err()
}
