package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Subscription is a webhook_subscriptions row.
type Subscription struct {
	ID        uuid.UUID
	StoreID   string
	Name      string
	TargetURL string
	Events    []string
	IsActive  bool
	// DeliveryTimeout bounds one delivery attempt; SignatureScheme is
	// "SS3" (X-SS3-Signature) or "StandardWebhooks" (both header sets).
	DeliveryTimeout time.Duration
	SignatureScheme string
	// MaxConcurrency bounds attempts in flight to the endpoint per replica;
	// RateLimit (per second, 0: none) and RateBurst bound their rate.
	MaxConcurrency int
	RateLimit      float64
	RateBurst      int
	// Destination, when set, is a queue delivered to instead of TargetURL
	// (which then holds its display form).
	Destination *Destination
}

// Signature schemes a subscription can choose.
const (
	SignatureSS3              = "SS3"
	SignatureStandardWebhooks = "StandardWebhooks"
)

// UpsertSubscription makes the row match s. It writes only when something
// differs, and reports whether it wrote, so steady state costs no writes.
func (s *Store) UpsertSubscription(ctx context.Context, sub Subscription) (bool, error) {
	events := slices.Clone(sub.Events)
	slices.Sort(events)
	timeout := sub.DeliveryTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	scheme := sub.SignatureScheme
	if scheme == "" {
		scheme = SignatureSS3
	}
	concurrency := sub.MaxConcurrency
	if concurrency <= 0 {
		concurrency = 10
	}
	var rateLimit *float64
	var rateBurst *int32
	if sub.RateLimit > 0 {
		rateLimit = &sub.RateLimit
		b := int32(max(sub.RateBurst, 1))
		rateBurst = &b
	}
	dest, err := destinationJSON(sub.Destination)
	if err != nil {
		return false, fmt.Errorf("upsert subscription %s: %w", sub.ID, err)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_subscriptions AS w (subscription_id, store_id, name, target_url, events, is_active,
			delivery_timeout_ms, signature_scheme, max_concurrency, rate_limit_per_second, rate_limit_burst, destination)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb)
		ON CONFLICT (subscription_id) DO UPDATE
		SET store_id = EXCLUDED.store_id, name = EXCLUDED.name, target_url = EXCLUDED.target_url,
		    events = EXCLUDED.events, is_active = EXCLUDED.is_active,
		    delivery_timeout_ms = EXCLUDED.delivery_timeout_ms, signature_scheme = EXCLUDED.signature_scheme,
		    max_concurrency = EXCLUDED.max_concurrency, rate_limit_per_second = EXCLUDED.rate_limit_per_second,
		    rate_limit_burst = EXCLUDED.rate_limit_burst, destination = EXCLUDED.destination, updated_at = now()
		WHERE (w.store_id, w.name, w.target_url, w.events, w.is_active, w.delivery_timeout_ms, w.signature_scheme,
		       w.max_concurrency, w.rate_limit_per_second, w.rate_limit_burst, w.destination)
		      IS DISTINCT FROM (EXCLUDED.store_id, EXCLUDED.name, EXCLUDED.target_url, EXCLUDED.events,
		                        EXCLUDED.is_active, EXCLUDED.delivery_timeout_ms, EXCLUDED.signature_scheme,
		                        EXCLUDED.max_concurrency, EXCLUDED.rate_limit_per_second, EXCLUDED.rate_limit_burst,
		                        EXCLUDED.destination)`,
		sub.ID, sub.StoreID, sub.Name, sub.TargetURL, events, sub.IsActive, timeout.Milliseconds(), scheme,
		concurrency, rateLimit, rateBurst, destText(dest))
	if err != nil {
		return false, fmt.Errorf("upsert subscription %s: %w", sub.ID, err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeactivateSubscription marks the row inactive and deleted, keeping it
// (and its deliveries) for audit; the dispatcher ends its waiting
// deliveries. A missing row is not an error.
func (s *Store) DeactivateSubscription(ctx context.Context, id uuid.UUID) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE webhook_subscriptions SET is_active = false, deleted_at = now(), updated_at = now()
		WHERE subscription_id = $1 AND deleted_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("deactivate subscription %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// GetSubscription reads one row; ok is false when there is none.
func (s *Store) GetSubscription(ctx context.Context, id uuid.UUID) (sub Subscription, ok bool, err error) {
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE subscription_id = $1`, id)
	if err != nil {
		return sub, false, fmt.Errorf("get subscription %s: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return sub, false, rows.Err()
	}
	if sub, err = scanSubscription(rows); err != nil {
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

// ActiveSubscriptions loads every active subscription, for the dispatcher's
// routing index.
func (s *Store) ActiveSubscriptions(ctx context.Context) ([]Subscription, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE is_active`)
	if err != nil {
		return nil, fmt.Errorf("load active subscriptions: %w", err)
	}
	defer rows.Close()
	var subs []Subscription
	for rows.Next() {
		sub, err := scanSubscription(rows)
		if err != nil {
			return nil, fmt.Errorf("load active subscriptions: %w", err)
		}
		subs = append(subs, sub)
	}
	return subs, rows.Err()
}

// RoutingVersion changes whenever any subscription or connector row
// changes, so the routing index reloads only when something did.
func (s *Store) RoutingVersion(ctx context.Context) (string, error) {
	var version int64
	if err := s.pool.QueryRow(ctx, `SELECT version FROM routing_version`).Scan(&version); err != nil {
		return "", fmt.Errorf("routing version: %w", err)
	}
	return strconv.FormatInt(version, 10), nil
}

const subscriptionColumns = `subscription_id, store_id, name, target_url, events, is_active, delivery_timeout_ms,
	signature_scheme, max_concurrency, COALESCE(rate_limit_per_second, 0), COALESCE(rate_limit_burst, 0), destination::text`

func scanSubscription(row pgx.Row) (Subscription, error) {
	var sub Subscription
	var timeoutMS int64
	var dest *string
	err := row.Scan(&sub.ID, &sub.StoreID, &sub.Name, &sub.TargetURL, &sub.Events, &sub.IsActive, &timeoutMS,
		&sub.SignatureScheme, &sub.MaxConcurrency, &sub.RateLimit, &sub.RateBurst, &dest)
	sub.DeliveryTimeout = time.Duration(timeoutMS) * time.Millisecond
	if err == nil && dest != nil {
		sub.Destination, err = parseDestination([]byte(*dest))
	}
	return sub, err
}

// destText passes a JSON document as text (nil: SQL NULL).
func destText(doc []byte) *string {
	if doc == nil {
		return nil
	}
	s := string(doc)
	return &s
}
