package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Notice is a Kafka message saying what became of a delivery. Written with
// its outcome, it stays in outcome_outbox until Kafka has taken it.
type Notice struct {
	// ID identifies the outcome: the same outcome always has the same id,
	// so a notice sent twice can be recognised.
	ID    uuid.UUID
	Topic string
	Key   []byte
	Value []byte
}

// noticeClaim is how long the writer of a notice owns it before the relay
// may send it instead.
const noticeClaim = 30 * time.Second

func insertNotices(ctx context.Context, db querier, notices []Notice) error {
	if len(notices) == 0 {
		return nil
	}
	n := len(notices)
	ids, topics := make([]uuid.UUID, n), make([]string, n)
	keys, values := make([][]byte, n), make([][]byte, n)
	for i, m := range notices {
		ids[i], topics[i], keys[i], values[i] = m.ID, m.Topic, m.Key, m.Value
	}
	_, err := db.Exec(ctx, `INSERT INTO outcome_outbox (outcome_id, topic, message_key, message_value, claimed_until)
		SELECT u.id, u.topic, u.key, u.value, now() + $5 * interval '1 millisecond'
		FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[]) AS u(id, topic, key, value)
		ON CONFLICT (outcome_id) DO NOTHING`, ids, topics, keys, values, noticeClaim.Milliseconds())
	if err != nil {
		return fmt.Errorf("write outcome notices: %w", err)
	}
	return nil
}

// ClaimNotices claims up to limit notices nobody holds (their writer died,
// or Kafka refused them), oldest first, for lease.
func (s *Store) ClaimNotices(ctx context.Context, limit int, lease time.Duration) ([]Notice, error) {
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT outcome_id FROM outcome_outbox
			WHERE claimed_until IS NULL OR claimed_until < now()
			ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		UPDATE outcome_outbox o SET claimed_until = now() + $2 * interval '1 millisecond', attempts = o.attempts + 1
		FROM due WHERE o.outcome_id = due.outcome_id
		RETURNING o.outcome_id, o.topic, o.message_key, o.message_value, o.created_at`, limit, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("claim outcome notices: %w", err)
	}
	type row struct {
		Notice
		created time.Time
	}
	claimed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var n row
		err := r.Scan(&n.ID, &n.Topic, &n.Key, &n.Value, &n.created)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim outcome notices: %w", err)
	}
	// Kafka keeps a key's messages in the order sent: send oldest first.
	out := make([]Notice, len(claimed))
	for i, n := range claimed {
		out[i] = n.Notice
	}
	return out, nil
}

// NoticesSent removes notices Kafka has taken.
func (s *Store) NoticesSent(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM outcome_outbox WHERE outcome_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("remove sent outcome notices: %w", err)
	}
	return nil
}

// NoticesRefused records why Kafka did not take notices; they are tried
// again once retryIn has passed.
func (s *Store) NoticesRefused(ctx context.Context, ids []uuid.UUID, reason string, retryIn time.Duration) error {
	_, err := s.pool.Exec(ctx, `UPDATE outcome_outbox SET last_error = $2, claimed_until = now() + $3 * interval '1 millisecond'
		WHERE outcome_id = ANY($1)`, ids, text(reason), retryIn.Milliseconds())
	if err != nil {
		return fmt.Errorf("record refused outcome notices: %w", err)
	}
	return nil
}

// PendingNotices counts notices not yet taken by Kafka.
func (s *Store) PendingNotices(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outcome_outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count outcome notices: %w", err)
	}
	return n, nil
}
