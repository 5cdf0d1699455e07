package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
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
	slots   chan struct{}
	limiter *rate.Limiter
	breaker *gobreaker.TwoStepCircuitBreaker[struct{}]
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
}

func newEndpoints(trips int, openFor time.Duration, onState func(subscription uuid.UUID, from, to string)) *endpoints {
	return &endpoints{trips: trips, openFor: openFor, byID: map[uuid.UUID]*endpoint{}, onState: onState}
}

func (e *endpoints) get(d store.Delivery) *endpoint {
	key := endpointKey{subscription: d.SubscriptionID, concurrency: max(d.MaxConcurrency, 1), rate: d.RateLimit, burst: max(d.RateBurst, 1)}
	e.mu.Lock()
	defer e.mu.Unlock()
	if ep, ok := e.byID[d.SubscriptionID]; ok && ep.key == key {
		return ep
	}
	ep := &endpoint{key: key, slots: make(chan struct{}, key.concurrency), openFor: e.openFor}
	if key.rate > 0 {
		ep.limiter = rate.NewLimiter(rate.Limit(key.rate), key.burst)
	}
	ep.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        d.SubscriptionID.String(),
		Timeout:     e.openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(e.trips) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if e.onState != nil {
				e.onState(d.SubscriptionID, from.String(), to.String())
			}
		},
	})
	e.byID[d.SubscriptionID] = ep
	return ep
}

// admit reserves a slot, a rate token and the breaker's permission; the
// returned done must be called with whether the endpoint did its part.
func (ep *endpoint) admit(ctx context.Context) (func(endpointOK bool), error) {
	wait := time.NewTimer(concurrencyWait)
	defer wait.Stop()
	select {
	case ep.slots <- struct{}{}:
	case <-wait.C:
		return nil, &errWait{reason: fmt.Sprintf("waiting: %d attempts already in flight to the endpoint", cap(ep.slots)), after: time.Second}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := func() { <-ep.slots }
	if ep.limiter != nil {
		r := ep.limiter.Reserve()
		if delay := r.Delay(); delay > 0 {
			r.Cancel()
			release()
			return nil, &errWait{reason: "waiting: the subscription's rate limit", after: max(delay, 10*time.Millisecond)}
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
		release()
	}, nil
}

// circuitReport is how often breaker states reach the gauge and the status.
const circuitReport = time.Second

// states reads every breaker's state now (reading moves an open breaker
// whose time is up to half-open, as the next attempt would).
func (e *endpoints) states() map[uuid.UUID]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[uuid.UUID]string, len(e.byID))
	for id, ep := range e.byID {
		out[id] = ep.breaker.State().String()
	}
	return out
}

// reportCircuits sets dispatcher_open_circuits to the breakers not closed
// and writes each subscription's state when it changed, every interval, in
// order: a gauge counted up and down, or writes raced from each transition,
// could be left saying "half-open" after the endpoint healed.
func (d *Dispatcher) reportCircuits(ctx context.Context, interval time.Duration) {
	written := map[uuid.UUID]string{}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		states := d.endpoints.states()
		notClosed := 0
		changed := map[uuid.UUID]string{}
		for id, state := range states {
			if state != gobreaker.StateClosed.String() {
				notClosed++
			}
			if written[id] != state {
				changed[id] = state
			}
		}
		d.metrics.OpenCircuits.Set(float64(notClosed))
		if err := d.store.SetCircuitStates(ctx, changed); err != nil {
			if ctx.Err() == nil {
				d.log.Error(err, "recording circuit states failed; will retry")
			}
			continue
		}
		maps.Copy(written, changed)
	}
}
