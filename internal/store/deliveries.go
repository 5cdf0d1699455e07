package store

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Delivery statuses as the platform specifies them.
const (
	DeliveryPending      = "PENDING"
	DeliveryDelivered    = "DELIVERED"
	DeliveryFailed       = "FAILED"
	DeliveryDeadLettered = "DEAD_LETTERED"
)

// NewDelivery is a delivery to create: one event for one subscription.
type NewDelivery struct {
	ID             uuid.UUID
	SubscriptionID uuid.UUID
	EventID        uuid.UUID
	StoreID        string
	EventType      string
	Payload        []byte
	// EventTime is the event's time, the partition key (see PartitionTime).
	EventTime time.Time
	// Trace is the context its attempts continue (empty: tracing off).
	Trace TraceContext
}

// TraceContext is a W3C trace context as its headers carry it.
type TraceContext struct {
	Parent, State string
}

// Delivery is a claimed delivery with what an attempt needs of its subscription.
type Delivery struct {
	ID             uuid.UUID
	SubscriptionID uuid.UUID
	EventID        uuid.UUID
	StoreID        string
	EventType      string
	Payload        []byte
	// EventTime is the row's partition key, as stored: every write to the
	// row names it, so that Postgres looks in one partition only.
	EventTime time.Time
	// Attempts already made.
	Attempts int
	// ClaimToken fences what is recorded of this claim (see Claim).
	ClaimToken uuid.UUID
	// Trace is the trace context its attempts continue, as persisted.
	Trace TraceContext

	TargetURL          string
	Timeout            time.Duration
	SignatureScheme    string
	SubscriptionActive bool
	MaxConcurrency     int
	RateLimit          float64
	RateBurst          int
	// Destination is the queue to deliver to (nil: TargetURL over HTTP);
	// the dispatcher fills it from the subscription.
	Destination *Destination
}

// Outcome is the result of an attempt (or of not attempting) to record.
type Outcome struct {
	DeliveryID   uuid.UUID
	EventTime    time.Time
	Status       string
	Attempts     int
	HTTPStatus   *int
	ResponseBody *string
	// RetryIn sets next_retry_at from the database's clock; nil clears it.
	RetryIn *time.Duration
	Error   string
	// Notice, when set, is written to the outbox with the outcome.
	Notice *Notice
	// ClaimToken is the claim the attempt was made under: the outcome
	// applies only while the row still carries it (zero: unfenced).
	ClaimToken uuid.UUID
	// Attempt, when set, is the attempt this outcome comes of, recorded in
	// webhook_delivery_attempts (its number is Attempts; its answer
	// HTTPStatus, ResponseBody and Error). Nil: no attempt was made.
	Attempt *Attempt
}

// Attempt is when and where one attempt was made.
type Attempt struct {
	StartedAt time.Time
	Duration  time.Duration
	// Replica is the dispatcher replica that made it (its pod's name).
	Replica string
}

// AttemptExcerpt bounds the answer kept with each attempt, in bytes.
const AttemptExcerpt = 1024

// InsertDeliveries creates deliveries in one statement, claimed by the
// caller under claim, skipping any (subscription, event, event time) that
// already exists. It returns the ids it inserted. Each event's payload is
// stored once, as its bytes, however many deliveries it has; a document
// jsonb refuses is stored with a sanitised copy (see Text).
func (s *Store) InsertDeliveries(ctx context.Context, ds []NewDelivery, claim Claim) ([]uuid.UUID, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	n := len(ds)
	ids, subs, events := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
	stores, types := make([]string, n), make([]string, n)
	times, digests := make([]time.Time, n), make([][]byte, n)
	parents, states := make([]*string, n), make([]*string, n)
	set := payloadSet{}
	for i, d := range ds {
		ids[i], subs[i], events[i], stores[i], types[i] = d.ID, d.SubscriptionID, d.EventID, text(d.StoreID), text(d.EventType)
		times[i], parents[i], states[i] = PartitionTime(d.EventTime), textPtr(d.Trace.Parent), textPtr(d.Trace.State)
		digests[i] = set.add(d.Payload, times[i])
	}
	docs := set.rows()
	var inserted []uuid.UUID
	err := carefully(func(careful bool) error {
		rows, err := s.pool.Query(ctx, `
			WITH `+insertPayloadsSQL(10, "$9")+`
			INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, event_time, payload_digest,
				status, attempt_number, next_retry_at, claimed_until, claim_token, trace_parent, trace_state)
			SELECT d.id, d.sub, d.store, d.type, d.event, d.at, d.digest,
				'PENDING', 0, now(), now() + $1 * interval '1 millisecond', $2, d.parent, d.state
			FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::uuid[], $8::timestamptz[], $14::bytea[], $15::text[], $16::text[])
				AS d(id, sub, store, type, event, at, digest, parent, state)
			ON CONFLICT (subscription_id, event_id, event_time) DO NOTHING
			RETURNING delivery_id`,
			claim.Lease.Milliseconds(), claim.Token, ids, subs, stores, types, events, times, careful,
			docs.digests, docs.times, docs.raw, docs.copies, digests, parents, states)
		if err != nil {
			return err
		}
		inserted, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("persist deliveries: %w", err)
	}
	return inserted, nil
}

// ClaimDue claims up to limit deliveries whose next attempt is due, whose
// subscription is active (a paused one's wait untouched) and that no live
// replica holds, under a fresh claim for lease. Replicas share the work
// without waiting on each other (FOR UPDATE SKIP LOCKED); an expired claim
// is taken over.
func (s *Store) ClaimDue(ctx context.Context, limit int, lease time.Duration) ([]Delivery, error) {
	claim := NewClaim(lease)
	rows, err := s.pool.Query(ctx, `
		WITH due AS (
			SELECT d.delivery_id, d.event_time FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)
			WHERE d.status IN ('PENDING', 'FAILED') AND d.next_retry_at <= now()
			  AND (d.claimed_until IS NULL OR d.claimed_until < now()) AND s.is_active
			ORDER BY d.next_retry_at
			LIMIT $1
			FOR UPDATE OF d SKIP LOCKED)
		UPDATE webhook_deliveries d SET claimed_until = now() + $2 * interval '1 millisecond', claim_token = $3
		FROM due, webhook_subscriptions s
		WHERE d.delivery_id = due.delivery_id AND d.event_time = due.event_time AND s.subscription_id = d.subscription_id
		RETURNING d.delivery_id, d.event_time, d.subscription_id, d.event_id, d.store_id, d.event_type, `+rawPayloadSQL("d")+`,
			d.attempt_number, s.target_url, s.delivery_timeout_ms, s.signature_scheme, s.is_active,
			s.max_concurrency, COALESCE(s.rate_limit_per_second, 0), COALESCE(s.rate_limit_burst, 0),
			COALESCE(d.trace_parent, ''), COALESCE(d.trace_state, '')`,
		limit, claim.Lease.Milliseconds(), claim.Token)
	if err != nil {
		return nil, fmt.Errorf("claim due deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var timeoutMS int64
		if err := rows.Scan(&d.ID, &d.EventTime, &d.SubscriptionID, &d.EventID, &d.StoreID, &d.EventType, &d.Payload,
			&d.Attempts, &d.TargetURL, &timeoutMS, &d.SignatureScheme, &d.SubscriptionActive,
			&d.MaxConcurrency, &d.RateLimit, &d.RateBurst, &d.Trace.Parent, &d.Trace.State); err != nil {
			return nil, fmt.Errorf("claim due deliveries: %w", err)
		}
		d.Timeout = time.Duration(timeoutMS) * time.Millisecond
		d.ClaimToken = claim.Token
		out = append(out, d)
	}
	return out, rows.Err()
}

// RecordOutcomes writes many attempts' results and their notices in one
// transaction and releases their claims; it returns the outcomes fenced
// off (their claim was lost), which were not written.
func (s *Store) RecordOutcomes(ctx context.Context, outcomes []Outcome) (stale map[uuid.UUID]bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stale, err = s.recordOutcomesTx(ctx, tx, outcomes)
		return err
	})
	return stale, err
}

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// recordOutcomesTx writes the outcomes whose claims still hold, with their
// notices, and returns the ids of those whose claims did not.
func (s *Store) recordOutcomesTx(ctx context.Context, db querier, outcomes []Outcome) (map[uuid.UUID]bool, error) {
	stale := map[uuid.UUID]bool{}
	if len(outcomes) == 0 {
		return stale, nil
	}
	n := len(outcomes)
	ids, times := make([]uuid.UUID, n), make([]time.Time, n)
	statuses := make([]string, n)
	attempts := make([]int32, n)
	httpStatus := make([]*int32, n)
	bodies := make([]*string, n)
	bodiesSanitised := make([]bool, n)
	retryMS := make([]*int64, n)
	errs := make([]*string, n)
	tokens := make([]uuid.UUID, n)
	for i, o := range outcomes {
		ids[i], times[i], statuses[i], attempts[i], tokens[i] = o.DeliveryID, o.EventTime, o.Status, int32(o.Attempts), o.ClaimToken
		if o.ResponseBody != nil {
			body, changed := Text(*o.ResponseBody)
			bodies[i], bodiesSanitised[i] = &body, changed
		}
		if o.HTTPStatus != nil {
			v := int32(*o.HTTPStatus)
			httpStatus[i] = &v
		}
		if o.RetryIn != nil {
			v := o.RetryIn.Milliseconds()
			retryMS[i] = &v
		}
		errs[i] = textPtr(o.Error)
	}
	rows, err := db.Query(ctx, `
		UPDATE webhook_deliveries d SET
			status = u.status, attempt_number = u.attempts,
			http_status = COALESCE(u.http_status, d.http_status),
			response_body = COALESCE(u.body, d.response_body),
			response_body_sanitised = CASE WHEN u.body IS NULL THEN d.response_body_sanitised ELSE u.body_sanitised END,
			next_retry_at = CASE WHEN u.retry_ms IS NULL THEN NULL ELSE now() + u.retry_ms * interval '1 millisecond' END,
			delivered_at = CASE WHEN u.status = 'DELIVERED' THEN now() ELSE d.delivered_at END,
			last_error = u.err, claimed_until = NULL, claim_token = NULL, updated_at = now()
		FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::text[], $6::bool[], $7::bigint[], $8::text[], $9::uuid[], $10::timestamptz[])
			AS u(id, status, attempts, http_status, body, body_sanitised, retry_ms, err, token, at)
		WHERE d.delivery_id = u.id AND d.event_time = u.at AND `+fenceSQL+`
		RETURNING d.delivery_id`,
		ids, statuses, attempts, httpStatus, bodies, bodiesSanitised, retryMS, errs, tokens, times)
	if err != nil {
		return nil, fmt.Errorf("record delivery outcomes: %w", err)
	}
	written, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("record delivery outcomes: %w", err)
	}
	applied := make(map[uuid.UUID]bool, len(written))
	for _, id := range written {
		applied[id] = true
	}
	var notices []Notice
	for _, o := range outcomes {
		switch {
		case !applied[o.DeliveryID]:
			stale[o.DeliveryID] = true
		case o.Notice != nil:
			notices = append(notices, *o.Notice)
		}
	}
	if err := insertAttempts(ctx, db, outcomes); err != nil {
		return nil, err
	}
	return stale, insertNotices(ctx, db, notices)
}

// insertAttempts records the outcomes' attempts in one statement. Those
// fenced off are recorded too: the endpoint saw them all the same.
func insertAttempts(ctx context.Context, db querier, outcomes []Outcome) error {
	var r attemptRows
	for _, o := range outcomes {
		if o.Attempt != nil {
			r.add(o.DeliveryID, o.EventTime, o.Attempts, *o.Attempt, o.HTTPStatus, o.ResponseBody, o.Error, o.Status)
		}
	}
	if len(r.ids) == 0 {
		return nil
	}
	_, err := db.Exec(ctx, `
		INSERT INTO webhook_delivery_attempts (delivery_id, event_time, attempt_number, started_at, duration_ms, http_status,
			response_excerpt, response_excerpt_sanitised, error, replica)
		SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],
			$7::text[], $8::bool[], $9::text[], $10::text[])`,
		r.ids, r.times, r.numbers, r.starts, r.durations, r.httpStatuses, r.excerpts, r.sanitised, r.errs, r.replicas)
	if err != nil {
		return fmt.Errorf("record delivery attempts: %w", err)
	}
	return nil
}

// attemptRows are attempts to insert, one slice per column: the answer
// cut to AttemptExcerpt and made storable, the error made storable.
type attemptRows struct {
	ids                []uuid.UUID
	times, starts      []time.Time
	numbers, durations []int32
	httpStatuses       []*int32
	excerpts, errs     []*string
	sanitised          []bool
	replicas, statuses []string
}

func (r *attemptRows) add(id uuid.UUID, eventTime time.Time, number int, a Attempt, httpStatus *int, answer *string, errText, status string) {
	r.ids, r.times, r.starts = append(r.ids, id), append(r.times, eventTime), append(r.starts, a.StartedAt)
	r.numbers = append(r.numbers, int32(number))
	r.durations = append(r.durations, int32(min(max(a.Duration.Milliseconds(), 0), 1<<31-1)))
	var hs *int32
	if httpStatus != nil {
		v := int32(*httpStatus)
		hs = &v
	}
	r.httpStatuses = append(r.httpStatuses, hs)
	var excerpt *string
	changed := false
	if answer != nil {
		var e string
		e, changed = Text(truncateUTF8(*answer, AttemptExcerpt))
		excerpt = &e
	}
	r.excerpts, r.sanitised = append(r.excerpts, excerpt), append(r.sanitised, changed)
	r.errs, r.replicas, r.statuses = append(r.errs, textPtr(errText)), append(r.replicas, text(a.Replica)), append(r.statuses, status)
}

// truncateUTF8 cuts s to at most n bytes, not inside a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DeliveryAttempt is one recorded attempt of a delivery.
type DeliveryAttempt struct {
	Number          int
	StartedAt       time.Time
	Duration        time.Duration
	HTTPStatus      *int
	ResponseExcerpt *string
	Error           string
	Replica         string
	// Status is what the attempt made of the delivery: connector attempts
	// only (webhook attempts keep no status; it is empty for them).
	Status string
}

// DeliveryAttempts lists a delivery's recorded attempts, oldest first.
func (s *Store) DeliveryAttempts(ctx context.Context, id uuid.UUID, eventTime time.Time) ([]DeliveryAttempt, error) {
	return s.attempts(ctx, "webhook_delivery_attempts", "''", id, eventTime)
}

// attempts lists one delivery's rows of an attempts table, oldest first;
// status is the expression its Status is read from.
func (s *Store) attempts(ctx context.Context, table, status string, id uuid.UUID, eventTime time.Time) ([]DeliveryAttempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT attempt_number, started_at, duration_ms, http_status, response_excerpt, COALESCE(error, ''), replica, `+
		status+` FROM `+table+` WHERE delivery_id = $1 AND event_time = $2 ORDER BY started_at, attempt_number`, id, eventTime)
	if err != nil {
		return nil, fmt.Errorf("list attempts of delivery %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeliveryAttempt, error) {
		var a DeliveryAttempt
		var ms int32
		var status *int32
		err := row.Scan(&a.Number, &a.StartedAt, &ms, &status, &a.ResponseExcerpt, &a.Error, &a.Replica, &a.Status)
		a.Duration = time.Duration(ms) * time.Millisecond
		if status != nil {
			v := int(*status)
			a.HTTPStatus = &v
		}
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("list attempts of delivery %s: %w", id, err)
	}
	return out, nil
}

// GetDelivery reads one delivery's state, for tests and the admin API (by
// its id alone: every partition is looked in).
func (s *Store) GetDelivery(ctx context.Context, id uuid.UUID) (status string, attempts int, httpStatus *int, nextRetryAt *time.Time, err error) {
	var hs *int32
	err = s.pool.QueryRow(ctx, `SELECT status, attempt_number, http_status, next_retry_at FROM webhook_deliveries WHERE delivery_id = $1`, id).
		Scan(&status, &attempts, &hs, &nextRetryAt)
	if hs != nil {
		v := int(*hs)
		httpStatus = &v
	}
	if err != nil {
		err = fmt.Errorf("get delivery %s: %w", id, err)
	}
	return
}

// RequeueDeadLettered puts a subscription's dead-lettered deliveries (those
// updated at or after since, when given) back to PENDING with a fresh
// attempt budget, keeping their delivery ids, and lowers its count of dead
// letters by as many. It returns how many.
func (s *Store) RequeueDeadLettered(ctx context.Context, subscriptionID uuid.UUID, since *time.Time) (int64, error) {
	n, err := s.requeueDeadLettered(ctx, `subscription_id = $1 AND ($2::timestamptz IS NULL OR updated_at >= $2)`, subscriptionID, since)
	if err != nil {
		return 0, fmt.Errorf("requeue dead-lettered deliveries: %w", err)
	}
	return n, nil
}

// RequeueDelivery puts one dead-lettered delivery back to PENDING, keeping
// its id. Rare (an operator's re-trigger): every partition is looked in.
func (s *Store) RequeueDelivery(ctx context.Context, id uuid.UUID) (bool, error) {
	n, err := s.requeueDeadLettered(ctx, `delivery_id = $1`, id)
	if err != nil {
		return false, fmt.Errorf("requeue delivery %s: %w", id, err)
	}
	return n == 1, nil
}

// requeueDeadLettered re-queues the dead letters where says and, in the
// same statement, takes them off their subscriptions' dead_lettered_now:
// the count cannot disagree with the rows.
func (s *Store) requeueDeadLettered(ctx context.Context, where string, args ...any) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		WITH requeued AS (
			UPDATE webhook_deliveries
			SET status = 'PENDING', attempt_number = 0, next_retry_at = now(), claimed_until = NULL, claim_token = NULL, last_error = NULL, updated_at = now()
			WHERE status = 'DEAD_LETTERED' AND `+where+`
			RETURNING subscription_id),
		lowered AS (
			UPDATE webhook_subscription_stats s SET dead_lettered_now = greatest(0, s.dead_lettered_now - r.n)
			FROM (SELECT subscription_id, count(*) AS n FROM requeued GROUP BY subscription_id) r
			WHERE s.subscription_id = r.subscription_id)
		SELECT count(*) FROM requeued`, args...).Scan(&n)
	return n, err
}

// DueCount counts deliveries whose next attempt is due, for the queue-depth
// gauge; a paused subscription's are held, not due.
func (s *Store) DueCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries d JOIN webhook_subscriptions s USING (subscription_id)
		WHERE d.status IN ('PENDING', 'FAILED') AND d.next_retry_at <= now() AND s.is_active`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count due deliveries: %w", err)
	}
	return n, nil
}

// Abandoned is a waiting delivery whose subscription was deleted, or has
// been paused for longer than the bound: it is to be ended, with Why.
type Abandoned struct {
	Delivery
	Why string
}

// AbandonAfter bounds how long deliveries wait on what no attempt can
// cure before they are dead-lettered.
type AbandonAfter struct {
	// Paused: the subscription is paused (the delivery's age).
	Paused time.Duration
	// SecretMissing: the signing secret is missing from Vault (the
	// manager restores a lost secret in seconds; one gone this long is
	// gone for good).
	SecretMissing time.Duration
	// DestinationDown: the queue destination cannot be reached, or its
	// credentials are missing from Vault; every delivery waits this long
	// at least, however late in the outage it came.
	DestinationDown time.Duration
}

// ClaimAbandoned claims, for lease, up to limit waiting deliveries that
// can never be attempted, or have waited as long as after allows: those
// of deleted subscriptions, of paused ones, of active ones whose signing
// secret is missing from Vault and of those whose queue destination is down.
func (s *Store) ClaimAbandoned(ctx context.Context, limit int, after AbandonAfter, lease time.Duration) ([]Abandoned, error) {
	claim := NewClaim(lease)
	pausedMaxAge, secretMissingMaxAge := after.Paused, after.SecretMissing
	// One statement per cause, each driven by its own small set (inactive
	// subscriptions; subscriptions missing a secret; destinations down),
	// rather than one OR that would scan every waiting delivery.
	retired, err := s.claimAbandoned(ctx, claim, `
			SELECT d.delivery_id, d.event_time, CASE WHEN s.deleted_at IS NOT NULL THEN 'the subscription was deleted'
				ELSE 'the subscription was paused for longer than ' || $2::text END AS why
			FROM webhook_subscriptions s
			JOIN webhook_deliveries d ON d.subscription_id = s.subscription_id AND d.status IN ('PENDING', 'FAILED')
			WHERE NOT s.is_active AND (s.deleted_at IS NOT NULL OR d.created_at < now() - $3 * interval '1 millisecond')
			  AND (d.claimed_until IS NULL OR d.claimed_until < now())`, limit, pausedMaxAge.String(), pausedMaxAge.Milliseconds())
	if err != nil || len(retired) == limit {
		return retired, err
	}
	secretless, err := s.claimAbandoned(ctx, claim, `
			SELECT d.delivery_id, d.event_time, 'the signing secret has been missing from Vault since ' ||
				to_char(st.secret_missing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ', longer than ' || $2::text AS why
			FROM webhook_subscription_stats st
			JOIN webhook_subscriptions s ON s.subscription_id = st.subscription_id AND s.is_active
			JOIN webhook_deliveries d ON d.subscription_id = st.subscription_id AND d.status IN ('PENDING', 'FAILED')
			WHERE st.secret_missing_since < now() - $3 * interval '1 millisecond'
			  AND (d.claimed_until IS NULL OR d.claimed_until < now())`,
		limit-len(retired), secretMissingMaxAge.String(), secretMissingMaxAge.Milliseconds())
	retired = append(retired, secretless...)
	if err != nil || len(retired) == limit {
		return retired, err
	}
	stranded, err := s.claimAbandoned(ctx, claim, `
			SELECT d.delivery_id, d.event_time, CASE st.destination_down_reason
					WHEN '`+DestinationCredentialsMissing+`' THEN 'the destination''s credentials have been missing from Vault since '
					ELSE 'the destination has been unreachable since ' END ||
				to_char(st.destination_down_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ', longer than ' || $2::text AS why
			FROM webhook_subscription_stats st
			JOIN webhook_subscriptions s ON s.subscription_id = st.subscription_id AND s.is_active
			JOIN webhook_deliveries d ON d.subscription_id = st.subscription_id AND d.status IN ('PENDING', 'FAILED')
			WHERE st.destination_down_since < now() - $3 * interval '1 millisecond'
			  AND d.created_at < now() - $3 * interval '1 millisecond'
			  AND (d.claimed_until IS NULL OR d.claimed_until < now())`,
		limit-len(retired), after.DestinationDown.String(), after.DestinationDown.Milliseconds())
	return append(retired, stranded...), err
}

// claimAbandoned claims, under claim, up to limit of the deliveries that
// selectSQL (delivery_id, event_time, why; $2 and $3 its own) lists.
func (s *Store) claimAbandoned(ctx context.Context, claim Claim, selectSQL string, limit int, arg2 string, arg3 int64) ([]Abandoned, error) {
	rows, err := s.pool.Query(ctx, `
		WITH gone AS (`+selectSQL+`
			LIMIT $1
			FOR UPDATE OF d SKIP LOCKED)
		UPDATE webhook_deliveries d SET claimed_until = now() + $4 * interval '1 millisecond', claim_token = $5
		FROM gone WHERE d.delivery_id = gone.delivery_id AND d.event_time = gone.event_time
		RETURNING d.delivery_id, d.event_time, d.subscription_id, d.event_id, d.store_id, d.event_type, d.attempt_number, gone.why`,
		limit, arg2, arg3, claim.Lease.Milliseconds(), claim.Token)
	if err != nil {
		return nil, fmt.Errorf("claim abandoned deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Abandoned, error) {
		a := Abandoned{Delivery: Delivery{ClaimToken: claim.Token}}
		err := row.Scan(&a.ID, &a.EventTime, &a.SubscriptionID, &a.EventID, &a.StoreID, &a.EventType, &a.Attempts, &a.Why)
		return a, err
	})
}
