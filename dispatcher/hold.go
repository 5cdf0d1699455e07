package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 5a, hold: every delivery this replica has claimed, queued or in
// flight, is held under a short lease that is renewed, all in one
// statement, every third of the lease. A replica that dies stops renewing,
// so its work is taken over within one lease, not after the longest
// attempt; a busy replica's queued work is never taken from it. Each claim
// is fenced by its token (store.Claim), and the replica keeps, on its own
// monotonic clock, how long each claim is surely still its own: a worker
// starts no attempt on a claim that may have lapsed (the replica was
// frozen, or Postgres unreachable past the lease), so work that another
// replica may have taken over is not sent twice by this one.

// holds is what one replica holds of one table.
type holds struct {
	table store.ClaimTable
	lease time.Duration
	mu    sync.Mutex
	byID  map[uuid.UUID]holding
}

type holding struct {
	token uuid.UUID
	// at is the row's partition key, which every write names.
	at time.Time
	// until is when, at the earliest, the claim may lapse, less a margin
	// for the clocks of this process and of Postgres to drift apart.
	until time.Time
}

func newHolds(table store.ClaimTable, lease time.Duration) *holds {
	return &holds{table: table, lease: lease, byID: map[uuid.UUID]holding{}}
}

// surely is how long a claim made (or renewed) at sent is surely held:
// Postgres set claimed_until to its now() + lease, and its now() came
// after sent.
func (h *holds) surely(sent time.Time) time.Time { return sent.Add(h.lease - h.lease/5) }

// add records claims made by a statement sent at sent.
func (h *holds) add(sent time.Time, held ...store.Held) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range held {
		h.byID[x.ID] = holding{token: x.Token, at: x.EventTime, until: h.surely(sent)}
	}
}

// drop forgets claims that were recorded, released or lost.
func (h *holds) drop(ids ...uuid.UUID) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		delete(h.byID, id)
	}
}

// valid says whether the claim on id is surely still this replica's; nil
// holds (ephemeral mode, nothing claimed) hold everything.
func (h *holds) valid(id uuid.UUID) bool {
	if h == nil {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	held, ok := h.byID[id]
	return ok && time.Now().Before(held.until)
}

// lapsed says whether the claim on id may have lapsed (see valid), and
// then forgets it: the work is left to whoever holds it now.
func (h *holds) lapsed(id uuid.UUID) bool {
	if h.valid(id) {
		return false
	}
	h.drop(id)
	return true
}

func (h *holds) snapshot() []store.Held {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]store.Held, 0, len(h.byID))
	for id, held := range h.byID {
		out = append(out, store.Held{ID: id, EventTime: held.at, Token: held.token})
	}
	return out
}

// renewed applies a renewal sent at sent of held: the claims renewed are
// surely held for another lease; the others were lost (taken over, or
// ended) and are forgotten. It returns how many were lost.
func (h *holds) renewed(sent time.Time, held []store.Held, ok map[uuid.UUID]bool) (lost int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range held {
		now, still := h.byID[x.ID]
		if !still || now.token != x.Token {
			continue // recorded, or claimed again, meanwhile
		}
		if ok[x.ID] {
			h.byID[x.ID] = holding{token: x.Token, at: x.EventTime, until: h.surely(sent)}
			continue
		}
		delete(h.byID, x.ID)
		lost++
	}
	return lost
}

// renew keeps this replica's claims alive every third of a lease until
// ctx ends. A renewal that fails is tried again at the next tick; until
// one succeeds, the claims' local deadlines run out and no new attempt
// starts on them.
func (d *Dispatcher) renew(ctx context.Context, hs ...*holds) {
	every := d.cfg.ClaimLease / 3
	wait.NonSlidingUntilWithContext(ctx, func(ctx context.Context) {
		for _, h := range hs {
			held := h.snapshot()
			if len(held) == 0 {
				continue
			}
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, every)
			ok, err := d.store.RenewClaims(rctx, h.table, held, h.lease)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Error(err, "renewing claims failed; will retry", "table", string(h.table), "claims", len(held))
				}
				continue
			}
			if lost := h.renewed(sent, held, ok); lost > 0 {
				d.metrics.ClaimsLost.Add(float64(lost))
				d.log.Info("claims lost to another replica or ended; they will not be attempted here", "table", string(h.table), "claims", lost)
			}
		}
	}, every)
}

// claiming bounds a statement that makes claims without cancelling it when
// ctx ends: cancelled in flight, its commit could land after we stopped
// waiting for it, leaving claims that nobody renews or releases until
// their lease lapses. The caller releases what it claimed if stopping.
// A claim older than its lease is worth nothing, hence the bound.
func (d *Dispatcher) claiming(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ClaimLease)
}

// release gives up our claims on deliveries we will not attempt, so that
// another replica takes them now rather than when the lease lapses.
func (d *Dispatcher) release(h *holds, held []store.Held) {
	if len(held) == 0 || h == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, x := range held {
		h.drop(x.ID)
	}
	if err := d.store.ReleaseClaims(ctx, h.table, held); err != nil {
		d.log.Error(err, "releasing unstarted work failed; it is taken over when its claims lapse", "table", string(h.table), "claims", len(held))
		return
	}
	d.log.Info("released work not started", "table", string(h.table), "claims", len(held))
}
