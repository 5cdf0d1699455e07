package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Limits shared by dispatcher replicas (migration 00014). A subscription's
// rate is one token bucket that replicas take tokens from in batches. Each
// replica with traffic for a subscription leases a share of its
// concurrency; the shares of live replicas never add up to more than the
// limit, because every change is made under one lock and a replica only
// grows into what the others do not hold. A replica's leases live while
// its heartbeat does, so a dead replica's shares return within one lease.

// limitsLock serialises share changes (one short transaction per replica
// per sync): a single lock cannot deadlock, and contention is a few
// replicas a few times a second.
const limitsLock = 0x6c696d697473 // "limits"

// LimitWant is one subscription this replica has traffic for: its
// concurrency limit and the slots it has in flight (never released while
// in use, or the others could exceed the limit).
type LimitWant struct {
	Subscription uuid.UUID
	Slots        int
	InUse        int
}

// LimitSync is one replica's sync: its heartbeat, the subscriptions it has
// traffic for, and the breakers it opened (each with how long it stays open).
type LimitSync struct {
	Replica string
	Lease   time.Duration
	Wants   []LimitWant
	Opened  map[uuid.UUID]time.Duration
	// BeforeCommit gets the new shares while the lock is held, so that the
	// replica lowers its own before any other can take what it gave up. It
	// returns the slots it could not give up (attempts started since it
	// counted InUse, or on a subscription it had no traffic for when it
	// looked), by subscription: those are recorded instead, so the leases
	// never say less than what is in flight.
	BeforeCommit func(map[uuid.UUID]int) map[uuid.UUID]int
}

// sharedCircuitStateSQL is a subscription's circuit state from its row b
// of endpoint_breakers (NULL without one), by the database's clock: open
// until its reopen time; then half-open, one replica at a time holding the
// probe, until a probe succeeds and deletes the row (a breaker whose time
// is up is half-open even while no replica holds the probe: the next
// attempt, from whichever replica, is one); closed without a row.
const sharedCircuitStateSQL = `CASE WHEN b.subscription_id IS NULL THEN 'closed'
	WHEN b.open_until > now() THEN 'open' ELSE 'half-open' END`

// SharedBreaker is a breaker some replica opened: how long it stays open
// (from the database's clock; <= 0 once a probe may go) and who holds the
// probe, if anyone does.
type SharedBreaker struct {
	OpenFor time.Duration
	ProbeBy string
}

// SyncLimits renews the replica's heartbeat, drops the replicas whose
// heartbeat expired (with their leases), sets this replica's shares and
// records the breakers it opened, in one transaction; it returns the
// slots leased and every breaker open.
func (s *Store) SyncLimits(ctx context.Context, req LimitSync) (map[uuid.UUID]int, map[uuid.UUID]SharedBreaker, error) {
	shares := make(map[uuid.UUID]int, len(req.Wants))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(limitsLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM limit_replicas WHERE expires_at < now()`); err != nil {
			return err
		}
		// A replica whose heartbeat had lapsed lost its leases with it:
		// it writes all its shares again.
		var fresh bool
		if err := tx.QueryRow(ctx, `INSERT INTO limit_replicas (replica, expires_at) VALUES ($1, now() + $2 * interval '1 millisecond')
			ON CONFLICT (replica) DO UPDATE SET expires_at = EXCLUDED.expires_at RETURNING xmax = 0`,
			req.Replica, req.Lease.Milliseconds()).Scan(&fresh); err != nil {
			return err
		}
		ids := make([]uuid.UUID, len(req.Wants))
		for i, w := range req.Wants {
			ids[i] = w.Subscription
		}
		others, mine, err := leases(ctx, tx, req.Replica, ids)
		if err != nil {
			return err
		}
		var slots []int32
		changed := ids[:0:0]
		for _, w := range req.Wants {
			sh := share(w, req.Replica, others[w.Subscription])
			shares[w.Subscription] = sh
			// Rows are written only when a share moves (the heartbeat
			// keeps them); a replica with traffic and no share still has
			// one, so that the others make room.
			if row, ok := mine[w.Subscription]; fresh || !ok || row != sh {
				changed, slots = append(changed, w.Subscription), append(slots, int32(sh))
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO endpoint_limit_leases (subscription_id, replica, slots)
			SELECT id, $1, n FROM unnest($2::uuid[], $3::int[]) AS w(id, n)
			ON CONFLICT (subscription_id, replica) DO UPDATE SET slots = EXCLUDED.slots`,
			req.Replica, changed, slots); err != nil {
			return err
		}
		// Subscriptions without traffic here give their share back.
		if _, err := tx.Exec(ctx, `DELETE FROM endpoint_limit_leases WHERE replica = $1 AND NOT subscription_id = ANY($2)`,
			req.Replica, ids); err != nil {
			return err
		}
		if err := recordOpened(ctx, tx, req.Opened); err != nil {
			return err
		}
		if req.BeforeCommit != nil {
			if err := keep(ctx, tx, req.Replica, req.BeforeCommit(shares), shares); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sync shared limits: %w", err)
	}
	breakers, err := s.openBreakers(ctx)
	if err != nil {
		return nil, nil, err
	}
	return shares, breakers, nil
}

// keep records the slots a replica could not give up (at most what it
// held before this sync, so within the limit) as its shares.
func keep(ctx context.Context, tx pgx.Tx, replica string, kept, shares map[uuid.UUID]int) error {
	if len(kept) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(kept))
	slots := make([]int32, 0, len(kept))
	for id, n := range kept {
		ids, slots = append(ids, id), append(slots, int32(n))
		shares[id] = n
	}
	_, err := tx.Exec(ctx, `INSERT INTO endpoint_limit_leases (subscription_id, replica, slots)
		SELECT id, $1, n FROM unnest($2::uuid[], $3::int[]) AS w(id, n)
		ON CONFLICT (subscription_id, replica) DO UPDATE SET slots = EXCLUDED.slots`, replica, ids, slots)
	return err
}

// leaseRow is another live replica's share of one subscription.
type leaseRow struct {
	replica string
	slots   int
}

// leases reads the live shares of ids: the other replicas' and replica's own.
func leases(ctx context.Context, tx pgx.Tx, replica string, ids []uuid.UUID) (map[uuid.UUID][]leaseRow, map[uuid.UUID]int, error) {
	rows, err := tx.Query(ctx, `SELECT subscription_id, replica, slots FROM endpoint_limit_leases
		WHERE subscription_id = ANY($1)`, ids)
	if err != nil {
		return nil, nil, err
	}
	others, mine := map[uuid.UUID][]leaseRow{}, map[uuid.UUID]int{}
	var id uuid.UUID
	var l leaseRow
	_, err = pgx.ForEachRow(rows, []any{&id, &l.replica, &l.slots}, func() error {
		if l.replica == replica {
			mine[id] = l.slots
		} else {
			others[id] = append(others[id], l)
		}
		return nil
	})
	return others, mine, err
}

// share is an equal part of the slots among the replicas with traffic
// (those left over from the division go to the first replicas by name),
// but never more than the others leave free: a replica's share grows only
// once the others have lowered theirs. Slots in use are never given up.
func share(w LimitWant, replica string, others []leaseRow) int {
	n := len(others) + 1
	names := []string{replica}
	freeSlots := w.Slots
	for _, o := range others {
		names = append(names, o.replica)
		freeSlots -= o.slots
	}
	slices.Sort(names)
	rank := slices.Index(names, replica)
	fairSlots := w.Slots / n
	if rank < w.Slots%n {
		fairSlots++
	}
	return max(w.InUse, min(fairSlots, freeSlots))
}

// TakeTokens takes up to want tokens from the subscription's bucket
// (refilled at rate a second, holding burst at most; a new bucket starts
// full) and returns how many it got and, when fewer than wanted, how long
// until the next token. One statement: the row lock orders the replicas.
func (s *Store) TakeTokens(ctx context.Context, subscription uuid.UUID, rate float64, burst, want int) (int, time.Duration, error) {
	var granted int
	var left float64
	err := s.pool.QueryRow(ctx, `INSERT INTO endpoint_rate_buckets AS b (subscription_id, tokens, granted, updated_at)
		VALUES ($1, $3::float8 - least($4, $3), least($4, $3), now())
		ON CONFLICT (subscription_id) DO UPDATE SET
			granted = least($4, floor(least($3::float8, b.tokens + $2::float8 * extract(epoch FROM now() - b.updated_at)::float8)))::int,
			tokens = least($3::float8, b.tokens + $2::float8 * extract(epoch FROM now() - b.updated_at)::float8)
				- least($4, floor(least($3::float8, b.tokens + $2::float8 * extract(epoch FROM now() - b.updated_at)::float8))),
			updated_at = now()
		RETURNING granted, tokens`, subscription, rate, burst, want).Scan(&granted, &left)
	if err != nil {
		return 0, 0, fmt.Errorf("take rate tokens: %w", err)
	}
	var next time.Duration
	if granted < want && rate > 0 {
		next = time.Duration((1 - left) / rate * float64(time.Second))
	}
	return granted, next, nil
}

// recordOpened records breakers this replica opened (or reopened after a
// failed probe), with when they may be probed.
func recordOpened(ctx context.Context, tx pgx.Tx, opened map[uuid.UUID]time.Duration) error {
	if len(opened) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(opened))
	ms := make([]int64, 0, len(opened))
	for id, d := range opened {
		ids, ms = append(ids, id), append(ms, d.Milliseconds())
	}
	_, err := tx.Exec(ctx, `INSERT INTO endpoint_breakers (subscription_id, open_until)
		SELECT id, now() + m * interval '1 millisecond' FROM unnest($1::uuid[], $2::bigint[]) AS o(id, m)
		ON CONFLICT (subscription_id) DO UPDATE SET open_until = EXCLUDED.open_until, probe_by = NULL, probe_until = NULL`, ids, ms)
	return err
}

func (s *Store) openBreakers(ctx context.Context) (map[uuid.UUID]SharedBreaker, error) {
	rows, err := s.pool.Query(ctx, `SELECT subscription_id, (EXTRACT(EPOCH FROM open_until - now()) * 1000)::bigint,
		CASE WHEN probe_until > now() THEN coalesce(probe_by, '') ELSE '' END FROM endpoint_breakers`)
	if err != nil {
		return nil, fmt.Errorf("read shared breakers: %w", err)
	}
	out := map[uuid.UUID]SharedBreaker{}
	var id uuid.UUID
	var ms int64
	var b SharedBreaker
	if _, err := pgx.ForEachRow(rows, []any{&id, &ms, &b.ProbeBy}, func() error {
		b.OpenFor = time.Duration(ms) * time.Millisecond
		out[id] = b
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read shared breakers: %w", err)
	}
	return out, nil
}

// ClaimProbe gives replica the half-open probe of a shared breaker whose
// open time is up, for lease, unless another replica holds it. A breaker
// no longer recorded (closed meanwhile) needs no probe: true.
func (s *Store) ClaimProbe(ctx context.Context, subscription uuid.UUID, replica string, lease time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE endpoint_breakers SET probe_by = $2, probe_until = now() + $3 * interval '1 millisecond'
		WHERE subscription_id = $1 AND open_until <= now() AND (probe_by IS NULL OR probe_by = $2 OR probe_until < now())`,
		subscription, replica, lease.Milliseconds())
	if err != nil {
		return false, fmt.Errorf("claim probe: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM endpoint_breakers WHERE subscription_id = $1)`, subscription).Scan(&exists); err != nil {
		return false, fmt.Errorf("claim probe: %w", err)
	}
	return !exists, nil
}

// CloseBreaker forgets a shared breaker after replica's probe succeeded.
func (s *Store) CloseBreaker(ctx context.Context, subscription uuid.UUID, replica string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM endpoint_breakers WHERE subscription_id = $1 AND probe_by = $2`, subscription, replica); err != nil {
		return fmt.Errorf("close shared breaker: %w", err)
	}
	return nil
}

// ReleaseLimits gives back everything replica holds (it is stopping): its
// shares, at once, and any probe.
func (s *Store) ReleaseLimits(ctx context.Context, replica string) error {
	_, err := s.pool.Exec(ctx, `WITH p AS (UPDATE endpoint_breakers SET probe_by = NULL, probe_until = NULL WHERE probe_by = $1)
		DELETE FROM limit_replicas WHERE replica = $1`, replica)
	if err != nil {
		return fmt.Errorf("release shared limits: %w", err)
	}
	return nil
}
