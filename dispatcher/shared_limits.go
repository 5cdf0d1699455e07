package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 4b, share: a subscription's rateLimit and maxConcurrentDeliveries
// are what the partner sees in total, however many replicas run, and a
// breaker one replica opens holds for all.
//
// Rate: one token bucket per subscription in Postgres (tokens.go). A
// replica takes tokens only for attempts about to start, so the partner
// sees exactly the bucket's rate and burst across replicas (leased shares
// of a rate would need a burst token per replica, and would sit idle on a
// replica whose claimed work moved to another: claims go to whichever
// replica polls first). Its cost is one statement per batch of attempts
// that ask at once, and only for subscriptions with a rateLimit.
//
// Concurrency: a slot cannot be taken in Postgres without a round trip per
// attempt at its start and end, so each replica with traffic for a
// subscription (an attempt wanted within LimitLease) leases an equal part
// of its slots and counts them in memory. Under one lock a replica lowers
// its share before committing and grows only into what the others left
// free, and never gives up slots in use, so the live leases never add up
// to more than the limit. A replica syncs every LimitSync, in one
// transaction for all its subscriptions, writing lease rows only when a
// share moves; its heartbeat in the same transaction keeps them alive. A
// stopping replica gives everything back at once; a dead one's leases go
// with its heartbeat after LimitLease, and a live replica that cannot
// reach Postgres stops using its shares before they can have expired.
//
// Breakers: a replica whose breaker opens records it with its reopen time;
// every sync reads the open ones, so the others stop within a LimitSync.
// Once the time is up one replica claims the half-open probe in Postgres
// (a lease, so a dead prober does not hold it); its success clears the
// record, its failure reopens it for all.

// slots counts attempts in flight against this replica's share.
type slots struct {
	mu      sync.Mutex
	used    int
	limit   int
	changed chan struct{}
}

func newSlots(limit int) *slots { return &slots{limit: limit, changed: make(chan struct{})} }

// acquire takes a slot, waiting up to wait for one; with no share at all
// it asks for one at once.
func (s *slots) acquire(ctx context.Context, wait time.Duration, sh *shared) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if s.used < s.limit {
			s.used++
			s.mu.Unlock()
			return true
		}
		none, ch := s.limit == 0, s.changed
		s.mu.Unlock()
		if none && sh != nil {
			sh.wake()
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (s *slots) release() { s.update(func() { s.used-- }) }

func (s *slots) setLimit(n int) { s.update(func() { s.limit = n }) }

// lowerTo lowers the limit to n, but not below the attempts in flight
// (started since they were counted), and returns what the replica must
// still hold: n, or more while those run. A higher n changes nothing (a
// share is raised only once committed).
func (s *slots) lowerTo(n int) (held int) {
	held = n
	s.update(func() {
		if n < s.limit {
			s.limit = max(n, s.used)
			held = s.limit
		}
	})
	return held
}

func (s *slots) update(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *slots) state() (limit, used int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit, s.used
}

// sharedBreaker is a breaker some replica opened, by this replica's clock.
type sharedBreaker struct {
	openUntil time.Time
	probeBy   string
}

// shared is this replica's side of the limits held in Postgres.
type shared struct {
	replica string
	store   *store.Store
	lease   time.Duration
	every   time.Duration
	log     logr.Logger
	kick    chan struct{}

	mu         sync.Mutex
	validUntil time.Time
	opens      map[uuid.UUID]time.Duration
	breakers   map[uuid.UUID]sharedBreaker
}

func newShared(replica string, st *store.Store, lease, every time.Duration, log logr.Logger) *shared {
	return &shared{replica: replica, store: st, lease: lease, every: every, log: log, kick: make(chan struct{}, 1),
		opens: map[uuid.UUID]time.Duration{}, breakers: map[uuid.UUID]sharedBreaker{}}
}

// wake asks for a sync now (an endpoint wants a share it has not got).
func (s *shared) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// valid: the last sync is recent enough that no other replica can have
// taken this replica's shares.
func (s *shared) valid() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Before(s.validUntil)
}

// opened queues a breaker this replica opened, to be recorded at once.
func (s *shared) opened(subscription uuid.UUID, openFor time.Duration) {
	s.mu.Lock()
	s.opens[subscription] = openFor
	s.breakers[subscription] = sharedBreaker{openUntil: time.Now().Add(openFor)}
	s.mu.Unlock()
	s.wake()
}

// admitBreaker says whether a breaker another replica opened lets an
// attempt through now, and whether it is the half-open probe.
func (s *shared) admitBreaker(ctx context.Context, subscription uuid.UUID, openFor time.Duration) (probe bool, err error) {
	s.mu.Lock()
	b, ok := s.breakers[subscription]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if wait := time.Until(b.openUntil); wait > 0 {
		return false, &errWait{reason: "waiting: the circuit is open after repeated failures", after: min(wait, openFor/3)}
	}
	if b.probeBy != "" && b.probeBy != s.replica {
		return false, &errWait{reason: "waiting: the circuit is half-open and a probe is in flight", after: time.Second}
	}
	won, err := s.store.ClaimProbe(ctx, subscription, s.replica, s.lease)
	if err != nil {
		return false, err
	}
	if !won {
		return false, &errWait{reason: "waiting: the circuit is half-open and a probe is in flight", after: time.Second}
	}
	return true, nil
}

// notClosed counts the subscriptions among ids whose shared breaker is
// open or half-open (recorded, or opened here and not yet recorded).
func (s *shared) notClosed(ids []uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := s.breakers[id]; ok {
			n++
		}
	}
	return n
}

// probed ends this replica's probe: a success closes the shared breaker,
// a failure opens it again for everyone.
func (s *shared) probed(ctx context.Context, subscription uuid.UUID, ok bool, openFor time.Duration) {
	if !ok {
		s.opened(subscription, openFor)
		return
	}
	if err := s.store.CloseBreaker(ctx, subscription, s.replica); err != nil {
		s.log.Error(err, "closing the shared breaker failed; its probe lease will lapse")
		return
	}
	s.mu.Lock()
	delete(s.breakers, subscription)
	s.mu.Unlock()
}

// run syncs every interval (or when woken) until ctx ends, then gives
// back everything this replica holds.
func (s *shared) run(ctx context.Context, eps *endpoints) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			s.zero(eps.all())
			if err := s.store.ReleaseLimits(context.WithoutCancel(ctx), s.replica); err != nil {
				s.log.Error(err, "releasing shared limits failed; they lapse within the lease")
			}
			return
		case <-t.C:
		case <-s.kick:
			// A replica left without a share asks often: not more than
			// five times a LimitSync.
			if !sleep(ctx, time.Until(last.Add(s.every/5))) {
				continue
			}
		}
		last = time.Now()
		s.sync(ctx, eps)
	}
}

// sync leases shares for the endpoints with traffic, lets go of the rest
// and reads the shared breakers.
func (s *shared) sync(ctx context.Context, eps *endpoints) {
	started := time.Now()
	all := eps.all()
	byID := map[uuid.UUID]*endpoint{}
	var wants []store.LimitWant
	var idle []*endpoint
	for _, ep := range all {
		_, used := ep.slots.state()
		if used == 0 && started.Sub(time.Unix(0, ep.wanted.Load())) > s.lease {
			idle = append(idle, ep)
			continue
		}
		byID[ep.key.subscription] = ep
		wants = append(wants, store.LimitWant{Subscription: ep.key.subscription, Slots: ep.key.concurrency, InUse: used})
	}
	s.mu.Lock()
	opens := s.opens
	s.opens = map[uuid.UUID]time.Duration{}
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, s.lease/3)
	defer cancel()
	shares, breakers, err := s.store.SyncLimits(sctx, store.LimitSync{Replica: s.replica, Lease: s.lease, Wants: wants, Opened: opens,
		BeforeCommit: func(shares map[uuid.UUID]int) map[uuid.UUID]int {
			// What is given up is given up before anyone can take it; an
			// attempt started since used was read keeps its slot.
			kept := map[uuid.UUID]int{}
			for _, ep := range idle {
				if n := ep.slots.lowerTo(0); n > 0 {
					kept[ep.key.subscription] = n
				}
			}
			for id, sh := range shares {
				if ep := byID[id]; ep != nil {
					if n := ep.slots.lowerTo(sh); n > sh {
						kept[id] = n
					}
				}
			}
			return kept
		}})
	if err != nil {
		s.mu.Lock()
		for id, d := range opens {
			if _, again := s.opens[id]; !again {
				s.opens[id] = d
			}
		}
		s.mu.Unlock()
		if ctx.Err() == nil {
			s.log.Error(err, "syncing shared limits failed; retrying")
		}
		return
	}
	for id, sh := range shares {
		if ep := byID[id]; ep != nil {
			ep.slots.setLimit(sh)
		}
	}
	now := time.Now()
	s.mu.Lock()
	// Stop using the shares a fifth of the lease before Postgres can let
	// them go: clocks run at slightly different rates.
	s.validUntil = started.Add(s.lease - s.lease/5)
	// The record is the truth (a reopen time brought forward or a breaker
	// closed by another replica's probe shows here within a sync), but
	// for the breakers opened here since the sync began and not yet in it.
	s.breakers = make(map[uuid.UUID]sharedBreaker, len(breakers))
	for id, b := range breakers {
		s.breakers[id] = sharedBreaker{openUntil: now.Add(b.OpenFor), probeBy: b.ProbeBy}
	}
	for id, d := range s.opens {
		s.breakers[id] = sharedBreaker{openUntil: now.Add(d)}
	}
	s.mu.Unlock()
}

// zero takes every share away from eps (the replica is stopping): no
// attempt starts after it.
func (s *shared) zero(eps []*endpoint) {
	for _, ep := range eps {
		ep.slots.lowerTo(0)
	}
}
