package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 4a, protect: before an attempt, the endpoint's concurrency limit,
// rate limit and circuit breaker each may say "not now". Such a delivery
// waits (rescheduled, no attempt spent); it is never dropped.

// concurrencyWait is how long an attempt waits for a free slot before it
// is rescheduled instead.
const concurrencyWait = 100 * time.Millisecond

// errWait marks a delivery that was not attempted now, and when to try again.
type errWait struct {
	reason string
	after  time.Duration
}

func (e *errWait) Error() string { return e.reason }

type endpoint struct {
	key     endpointKey
	openFor time.Duration
	slots   *slots
	limiter *rate.Limiter
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
	// shared, unless nil (ephemeral mode), makes the limits and the
	// breaker hold across replicas: this replica uses only the share it
	// leased (shared_limits.go).
	shared *shared
	// wanted is when (Unix ns) an attempt last wanted the endpoint: a
	// replica without traffic for it gives its share back.
	wanted atomic.Int64
	// tokens is the rate limit's bucket in Postgres (shared mode).
	tokens *tokens
}

// endpointKey: a subscription's endpoint, rebuilt when its limits change.
type endpointKey struct {
	subscription uuid.UUID
	concurrency  int
	rate         float64
	burst        int
}

type endpoints struct {
	// The breaker opens after trips failures in a row, stays open for
	// openFor, then lets one probe through.
	trips   int
	openFor time.Duration
	mu      sync.Mutex
	byID    map[uuid.UUID]*endpoint
	onState func(subscription uuid.UUID, from, to string)
	shared  *shared
}

func newEndpoints(trips int, openFor time.Duration, onState func(subscription uuid.UUID, from, to string), sh *shared) *endpoints {
	return &endpoints{trips: trips, openFor: openFor, byID: map[uuid.UUID]*endpoint{}, onState: onState, shared: sh}
}

func (e *endpoints) get(d store.Delivery) *endpoint {
	key := endpointKey{subscription: d.SubscriptionID, concurrency: max(d.MaxConcurrency, 1), rate: d.RateLimit, burst: max(d.RateBurst, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ep, ok := e.byID[d.SubscriptionID]; ok && ep.key == key {
		return ep
	}
	ep := &endpoint{key: key, slots: newSlots(key.concurrency), openFor: e.openFor, shared: e.shared}
	switch {
	case key.rate > 0 && ep.shared != nil:
		ep.tokens = newTokens(ep.shared.store, key)
	case key.rate > 0:
		ep.limiter = rate.NewLimiter(rate.Limit(key.rate), key.burst)
	}
	if ep.shared != nil {
		ep.slots.setLimit(0) // none until a share is leased
	}
	ep.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        d.SubscriptionID.String(),
		Timeout:     e.openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(e.trips) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if e.onState != nil {
				e.onState(d.SubscriptionID, from.String(), to.String())
			}
			if to == gobreaker.StateOpen && e.shared != nil {
				e.shared.opened(d.SubscriptionID, e.openFor)
			}
		},
	})
	e.byID[d.SubscriptionID] = ep
	return ep
}

// all lists the endpoints this replica has met.
func (e *endpoints) all() []*endpoint {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*endpoint, 0, len(e.byID))
	for _, ep := range e.byID {
		out = append(out, ep)
	}
	return out
}

// admit reserves a slot, a rate token and the breaker's permission; the
// returned done must be called with whether the endpoint did its part.
func (ep *endpoint) admit(ctx context.Context) (func(endpointOK bool), error) {
	ep.wanted.Store(time.Now().UnixNano())
	if ep.shared != nil && !ep.shared.valid() {
		ep.shared.wake()
		return nil, &errWait{reason: "waiting: this replica's share of the endpoint's limits has lapsed", after: time.Second}
	}
	if !ep.slots.acquire(ctx, concurrencyWait, ep.shared) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, &errWait{reason: fmt.Sprintf("waiting: %d attempts already in flight to the endpoint", ep.key.concurrency), after: time.Second}
	}
	release := ep.slots.release
	if delay, err := ep.takeToken(ctx); err != nil || delay > 0 {
		release()
		if err != nil {
			return nil, err
		}
		return nil, &errWait{reason: "waiting: the subscription's rate limit", after: max(delay, 10*time.Millisecond)}
	}
	probe := false
	if ep.shared != nil {
		var err error
		if probe, err = ep.shared.admitBreaker(ctx, ep.key.subscription, ep.openFor); err != nil {
			release()
			return nil, err
		}
	}
	done, err := ep.breaker.Allow()
	if err != nil {
		release()
		if errors.Is(err, gobreaker.ErrOpenState) {
			return nil, &errWait{reason: "waiting: the circuit is open after repeated failures", after: ep.openFor / 3}
		}
		return nil, &errWait{reason: "waiting: the circuit is half-open and a probe is in flight", after: time.Second}
	}
	return func(ok bool) {
		if ok {
			done(nil)
		} else {
			done(errors.New("endpoint failed"))
		}
		if probe {
			ep.shared.probed(ctx, ep.key.subscription, ok, ep.openFor)
		}
		release()
	}, nil
}

// takeToken takes a token of the rate limit, or says how long to wait.
func (ep *endpoint) takeToken(ctx context.Context) (time.Duration, error) {
	if ep.tokens != nil {
		return ep.tokens.take(ctx)
	}
	if ep.limiter == nil {
		return 0, nil
	}
	r := ep.limiter.Reserve()
	if delay := r.Delay(); delay > 0 {
		r.Cancel()
		return delay, nil
	}
	return 0, nil
}

// circuitReport is how often the shared breakers reach the gauge.
const circuitReport = time.Second

// reportCircuits sets dispatcher_open_circuits, every interval, to the
// breakers open or half-open in the shared record (endpoint_breakers, as
// of this replica's last sync) among the subscriptions this replica has
// delivered to or tried to: the breakers holding its deliveries back,
// whichever replica opened them. Each replica counts the same shared
// breakers, so aggregate with max, not sum. The status's circuitState is
// read from the same record by the manager (store.SubscriptionStatsAll),
// so replicas no longer write it.
func (d *Dispatcher) reportCircuits(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.metrics.OpenCircuits.Set(float64(d.shared.notClosed(d.endpoints.ids())))
	}
}

// ids lists the subscriptions of the endpoints this replica has met.
func (e *endpoints) ids() []uuid.UUID {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Collect(maps.Keys(e.byID))
}
