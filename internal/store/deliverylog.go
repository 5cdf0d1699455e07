package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The delivery log: webhook and connector deliveries as the aggregated API
// server shows them (kubectl get, describe and -w), read by owner (a
// subscription or a connector config) newest first, with keyset paging.

// MaxDeliveryPage caps DeliveryFilter.Limit.
const MaxDeliveryPage = 1000

// TestEventType is the event type of a test delivery that names none: a
// ping.
const TestEventType = "webhook.test"

// ErrSubscriptionNotFound is InsertTestDelivery's answer for a
// subscription that has no row.
var ErrSubscriptionNotFound = errors.New("subscription not found")

// DeliveryFilter selects deliveries for the delivery log, newest first.
type DeliveryFilter struct {
	// Owners are the subscription ids (webhook) or connector config ids
	// whose deliveries to list; empty: none (return nothing, no query).
	Owners []uuid.UUID
	// Status is "" (any) or one of DeliveryPending, DeliveryDelivered,
	// DeliveryFailed and DeliveryDeadLettered.
	Status string
	// EventType is "" (any) or the one event type to list.
	EventType string
	// Since and Until bound event_time to [Since, Until); nil: unbounded.
	Since, Until *time.Time
	// After is keyset paging: only rows strictly after this one in the
	// order (event_time DESC, delivery_id DESC). See LoggedDelivery.Cursor.
	After *DeliveryCursor
	// Limit is the most rows to return: > 0, capped at MaxDeliveryPage.
	Limit int
}

// DeliveryCursor is a position in the delivery log's order.
type DeliveryCursor struct {
	EventTime time.Time
	ID        uuid.UUID
}

// LoggedDelivery is one delivery as the delivery log shows it.
type LoggedDelivery struct {
	// OwnerID is the subscription_id (webhook) or config_id (connector).
	ID, OwnerID, EventID uuid.UUID
	StoreID, EventType   string
	// EventTime is the partition key, as stored (see PartitionTime).
	EventTime, CreatedAt, UpdatedAt time.Time
	Status                          string
	Attempts                        int
	// HTTPStatus and ResponseBody are the last answer's (webhook only).
	HTTPStatus   *int
	ResponseBody *string
	LastError    *string
	NextRetryAt  *time.Time
	DeliveredAt  *time.Time
	// EntityKey orders a connector's events for one entity (connector
	// only).
	EntityKey *string
	// ChangedAt is when the newest attempt that made a ChangedSince result
	// was recorded; zero in other results.
	ChangedAt time.Time
}

// Cursor is the position of d: a filter After it lists the rows past d.
func (d LoggedDelivery) Cursor() DeliveryCursor {
	return DeliveryCursor{EventTime: d.EventTime, ID: d.ID}
}

// deliveryLog is what the log reads of one kind of delivery.
type deliveryLog struct {
	kind, table, owner, attempts string
	// columns are LoggedDelivery's columns of delivery row d, in
	// scanLogged's order.
	columns string
}

var (
	webhookLog = deliveryLog{kind: "webhook", table: "webhook_deliveries", owner: "subscription_id", attempts: "webhook_delivery_attempts",
		columns: `d.delivery_id, d.subscription_id, d.event_id, d.store_id, d.event_type, d.event_time, d.created_at, d.updated_at,
			d.status, d.attempt_number, d.http_status, d.response_body, d.last_error, d.next_retry_at, d.delivered_at, NULL::text`}
	connectorLog = deliveryLog{kind: "connector", table: "connector_deliveries", owner: "config_id", attempts: "connector_delivery_attempts",
		columns: `d.delivery_id, d.config_id, d.event_id, d.store_id, d.event_type, d.event_time, d.created_at, d.updated_at,
			d.status, d.attempt_number, NULL::int, NULL::text, d.last_error, d.next_retry_at, d.delivered_at, d.entity_key`}
)

// ListWebhookDeliveries lists the deliveries of f.Owners (subscriptions)
// that f selects, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, f DeliveryFilter) ([]LoggedDelivery, error) {
	return s.listDeliveries(ctx, webhookLog, f)
}

// ListConnectorDeliveries lists the deliveries of f.Owners (connector
// configs) that f selects, newest first.
func (s *Store) ListConnectorDeliveries(ctx context.Context, f DeliveryFilter) ([]LoggedDelivery, error) {
	return s.listDeliveries(ctx, connectorLog, f)
}

// listDeliveries reads each owner's newest rows through its index on
// (owner, event_time DESC, delivery_id DESC), which stops at the limit
// whatever the owner's history holds, and merges them. The statement holds
// only the conditions f sets: an unset one written as "$n IS NULL OR"
// would keep a generic plan from bounding the index scan or pruning days.
func (s *Store) listDeliveries(ctx context.Context, l deliveryLog, f DeliveryFilter) ([]LoggedDelivery, error) {
	if len(f.Owners) == 0 {
		return nil, nil
	}
	if f.Limit <= 0 {
		return nil, fmt.Errorf("list %s deliveries: limit %d, want more than 0", l.kind, f.Limit)
	}
	args := []any{distinct(f.Owners), min(f.Limit, MaxDeliveryPage)}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var where strings.Builder
	if f.Status != "" {
		switch f.Status {
		case DeliveryPending, DeliveryDelivered, DeliveryFailed, DeliveryDeadLettered:
		default:
			return nil, fmt.Errorf("list %s deliveries: unknown status %q", l.kind, f.Status)
		}
		// A literal, not a parameter: every plan, generic ones too, can then
		// read a partial index of that status (dead letters have one).
		fmt.Fprintf(&where, " AND d.status = '%s'", f.Status)
	}
	if f.EventType != "" {
		where.WriteString(" AND d.event_type = " + param(text(f.EventType)))
	}
	if f.Since != nil {
		where.WriteString(" AND d.event_time >= " + param(*f.Since))
	}
	if f.Until != nil {
		where.WriteString(" AND d.event_time < " + param(*f.Until))
	}
	if c := f.After; c != nil {
		// The bound on event_time alone prunes the newer days; the row
		// comparison is the strict order within.
		at, id := param(c.EventTime), param(c.ID)
		fmt.Fprintf(&where, " AND d.event_time <= %[1]s AND (d.event_time, d.delivery_id) < (%[1]s, %[2]s)", at, id)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+l.columns+` FROM unnest($1::uuid[]) AS o(id)
		CROSS JOIN LATERAL (
			SELECT * FROM `+l.table+` d WHERE d.`+l.owner+` = o.id`+where.String()+`
			ORDER BY d.event_time DESC, d.delivery_id DESC
			LIMIT $2) d
		ORDER BY d.event_time DESC, d.delivery_id DESC
		LIMIT $2`, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s deliveries: %w", l.kind, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LoggedDelivery, error) { return scanLogged(row) })
	if err != nil {
		return nil, fmt.Errorf("list %s deliveries: %w", l.kind, err)
	}
	return out, nil
}

// distinct is ids without repeats: an owner named twice is listed once.
func distinct(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(out)
}

// WebhookDelivery reads one webhook delivery by id alone (every partition
// is looked in), with its payload's bytes as stored.
func (s *Store) WebhookDelivery(ctx context.Context, id uuid.UUID) (d LoggedDelivery, payload []byte, found bool, err error) {
	return s.loggedDelivery(ctx, webhookLog, id)
}

// ConnectorDelivery reads one connector delivery by id alone (every
// partition is looked in), with its payload's bytes as stored.
func (s *Store) ConnectorDelivery(ctx context.Context, id uuid.UUID) (d LoggedDelivery, payload []byte, found bool, err error) {
	return s.loggedDelivery(ctx, connectorLog, id)
}

func (s *Store) loggedDelivery(ctx context.Context, l deliveryLog, id uuid.UUID) (LoggedDelivery, []byte, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+l.columns+`, `+rawPayloadSQL("d")+` FROM `+l.table+` d WHERE d.delivery_id = $1 LIMIT 1`, id)
	if err != nil {
		return LoggedDelivery{}, nil, false, fmt.Errorf("get %s delivery %s: %w", l.kind, id, err)
	}
	var payload []byte
	d, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (LoggedDelivery, error) { return scanLogged(row, &payload) })
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return LoggedDelivery{}, nil, false, nil
	case err != nil:
		return LoggedDelivery{}, nil, false, fmt.Errorf("get %s delivery %s: %w", l.kind, id, err)
	}
	return d, payload, true, nil
}

// WebhookDeliveriesChangedSince lists the deliveries of owners
// (subscriptions) with an attempt recorded at or after since, each once
// with its current row, oldest change first (ChangedAt), at most limit.
//
// An attempt's recorded_at is its recording transaction's start, and it
// becomes visible at commit, a moment later: a watch polling from the
// Now of its last poll would miss one committed just after. It should poll
// from a little earlier (a second or so) and drop what it has sent
// already (the same ID and UpdatedAt). A result of limit rows all with one
// ChangedAt cannot be continued from: a watch should ask for more than a
// batch of outcomes (a few hundred) or start over from a list.
func (s *Store) WebhookDeliveriesChangedSince(ctx context.Context, owners []uuid.UUID, since time.Time, limit int) ([]LoggedDelivery, error) {
	return s.changedSince(ctx, webhookLog, owners, since, limit)
}

// ConnectorDeliveriesChangedSince is WebhookDeliveriesChangedSince for
// connector deliveries (owners are connector config ids).
func (s *Store) ConnectorDeliveriesChangedSince(ctx context.Context, owners []uuid.UUID, since time.Time, limit int) ([]LoggedDelivery, error) {
	return s.changedSince(ctx, connectorLog, owners, since, limit)
}

// changedSince finds the recent attempts through the attempts' BRIN index
// on recorded_at (every owner's: attempts do not carry their owner) and
// reads each one's delivery by its key.
func (s *Store) changedSince(ctx context.Context, l deliveryLog, owners []uuid.UUID, since time.Time, limit int) ([]LoggedDelivery, error) {
	if len(owners) == 0 {
		return nil, nil
	}
	if limit <= 0 {
		return nil, fmt.Errorf("%s deliveries changed since %v: limit %d, want more than 0", l.kind, since, limit)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+l.columns+`, c.changed_at FROM (
			SELECT a.delivery_id, a.event_time, max(a.recorded_at) AS changed_at
			FROM `+l.attempts+` a WHERE a.recorded_at >= $2
			GROUP BY a.delivery_id, a.event_time) c
		JOIN `+l.table+` d ON d.delivery_id = c.delivery_id AND d.event_time = c.event_time
		WHERE d.`+l.owner+` = ANY($1)
		ORDER BY c.changed_at, d.delivery_id
		LIMIT $3`, owners, since, limit)
	if err != nil {
		return nil, fmt.Errorf("%s deliveries changed since %v: %w", l.kind, since, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (LoggedDelivery, error) {
		var changed time.Time
		d, err := scanLogged(row, &changed)
		d.ChangedAt = changed
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("%s deliveries changed since %v: %w", l.kind, since, err)
	}
	return out, nil
}

// scanLogged scans a row of a deliveryLog's columns, then extra.
func scanLogged(row pgx.CollectableRow, extra ...any) (LoggedDelivery, error) {
	var d LoggedDelivery
	var httpStatus *int32
	var attempts int32
	dest := append([]any{&d.ID, &d.OwnerID, &d.EventID, &d.StoreID, &d.EventType, &d.EventTime, &d.CreatedAt, &d.UpdatedAt,
		&d.Status, &attempts, &httpStatus, &d.ResponseBody, &d.LastError, &d.NextRetryAt, &d.DeliveredAt, &d.EntityKey}, extra...)
	if err := row.Scan(dest...); err != nil {
		return LoggedDelivery{}, err
	}
	d.Attempts = int(attempts)
	if httpStatus != nil {
		v := int(*httpStatus)
		d.HTTPStatus = &v
	}
	return d, nil
}

// Now is the database's clock, so that a watch's cursor (compared with
// recorded_at) never depends on the API server's.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return now, nil
}

// InsertTestDelivery queues a test delivery for one subscription: PENDING,
// due now and unclaimed, so that any dispatcher's ClaimDue picks it up and
// delivers it, signed, like any other. An empty eventType is
// TestEventType; an empty payload is a ping in the platform's envelope.
// The payload is stored as InsertDeliveries stores one; event and delivery
// ids are new, the event time the database's now. A subscription without a
// row is ErrSubscriptionNotFound.
func (s *Store) InsertTestDelivery(ctx context.Context, subscriptionID uuid.UUID, storeID, eventType string, payload []byte) (id uuid.UUID, eventTime time.Time, err error) {
	if eventType == "" {
		eventType = TestEventType
	}
	now, err := s.Now(ctx)
	if err != nil {
		return uuid.Nil, time.Time{}, fmt.Errorf("insert test delivery: %w", err)
	}
	id, event, at := NewID(), NewID(), PartitionTime(now)
	if len(payload) == 0 {
		payload, _ = json.Marshal(struct {
			EventID   uuid.UUID      `json:"eventId"`
			EventType string         `json:"eventType"`
			StoreID   string         `json:"storeId"`
			Time      time.Time      `json:"time"`
			Data      map[string]any `json:"data"`
		}{event, eventType, storeID, at, map[string]any{}}) // cannot fail: no value here marshals with an error
	}
	set := payloadSet{}
	digest := set.add(payload, at)
	docs := set.rows()
	// In a transaction, so that the payload of a delivery refused (no such
	// subscription) is not kept either.
	err = carefully(func(careful bool) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `
				WITH `+insertPayloadsSQL(9, "$8")+`
				INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, event_time, payload_digest,
					status, attempt_number, next_retry_at)
				SELECT $1, s.subscription_id, $3, $4, $5, $6, $7, 'PENDING', 0, now()
				FROM webhook_subscriptions s WHERE s.subscription_id = $2
				RETURNING delivery_id`,
				id, subscriptionID, text(storeID), text(eventType), event, at, digest, careful,
				docs.digests, docs.times, docs.raw, docs.copies)
			if err != nil {
				return err
			}
			inserted, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			if err == nil && len(inserted) == 0 {
				err = ErrSubscriptionNotFound
			}
			return err
		})
	})
	if err != nil {
		return uuid.Nil, time.Time{}, fmt.Errorf("insert test delivery for subscription %s: %w", subscriptionID, err)
	}
	return id, at, nil
}
