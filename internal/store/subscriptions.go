package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Subscription is a webhook_subscriptions row.
type Subscription struct {
	ID        uuid.UUID
	StoreID   string
	Name      string
	TargetURL string
	Events    []string
	IsActive  bool
}

// UpsertSubscription makes the row match s. It writes only when something
// differs, and reports whether it wrote, so steady state costs no writes.
func (s *Store) UpsertSubscription(ctx context.Context, sub Subscription) (bool, error) {
	events := slices.Clone(sub.Events)
	slices.Sort(events)
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_subscriptions AS w (subscription_id, store_id, name, target_url, events, is_active)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (subscription_id) DO UPDATE
		SET store_id = EXCLUDED.store_id, name = EXCLUDED.name, target_url = EXCLUDED.target_url,
		    events = EXCLUDED.events, is_active = EXCLUDED.is_active, updated_at = now()
		WHERE (w.store_id, w.name, w.target_url, w.events, w.is_active)
		      IS DISTINCT FROM (EXCLUDED.store_id, EXCLUDED.name, EXCLUDED.target_url, EXCLUDED.events, EXCLUDED.is_active)`,
		sub.ID, sub.StoreID, sub.Name, sub.TargetURL, events, sub.IsActive)
	if err != nil {
		return false, fmt.Errorf("upsert subscription %s: %w", sub.ID, err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeactivateSubscription marks the row inactive, keeping it (and its
// deliveries) for audit. A missing row is not an error.
func (s *Store) DeactivateSubscription(ctx context.Context, id uuid.UUID) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_subscriptions SET is_active = false, updated_at = now()
		WHERE subscription_id = $1 AND is_active`, id)
	if err != nil {
		return false, fmt.Errorf("deactivate subscription %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// GetSubscription reads one row; ok is false when there is none.
func (s *Store) GetSubscription(ctx context.Context, id uuid.UUID) (sub Subscription, ok bool, err error) {
	rows, err := s.pool.Query(ctx, `SELECT subscription_id, store_id, name, target_url, events, is_active
		FROM webhook_subscriptions WHERE subscription_id = $1`, id)
	if err != nil {
		return sub, false, fmt.Errorf("get subscription %s: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return sub, false, rows.Err()
	}
	if err := rows.Scan(&sub.ID, &sub.StoreID, &sub.Name, &sub.TargetURL, &sub.Events, &sub.IsActive); err != nil {
		return sub, false, fmt.Errorf("get subscription %s: %w", id, err)
	}
	return sub, true, nil
}

// ActiveSubscriptionIDsUpdatedBefore lists active rows not touched since
// cutoff, for the orphan sweep.
func (s *Store) ActiveSubscriptionIDsUpdatedBefore(ctx context.Context, cutoff time.Time) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT subscription_id FROM webhook_subscriptions
		WHERE is_active AND updated_at < $1`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("list active subscriptions: %w", err)
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
