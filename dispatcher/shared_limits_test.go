package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/store"
)

// arrivals is a receiver that notes when each request came and how many
// were in flight at once.
type arrivals struct {
	*httptest.Server
	mu       sync.Mutex
	at       []time.Time
	inFlight int
	most     int
	status   int
	delay    time.Duration
}

func newArrivals(t testing.TB, status int, delay time.Duration) *arrivals {
	a := &arrivals{status: status, delay: delay}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		a.at = append(a.at, time.Now())
		a.inFlight++
		a.most = max(a.most, a.inFlight)
		status, delay := a.status, a.delay
		a.mu.Unlock()
		time.Sleep(delay)
		a.mu.Lock()
		a.inFlight--
		a.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *arrivals) times() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.at...)
}

func (a *arrivals) setStatus(status int) {
	a.mu.Lock()
	a.status = status
	a.mu.Unlock()
}

func produceN(t *testing.T, e *env, storeID string, n int) {
	t.Helper()
	var msgs []kafka.Message
	for range n {
		m, _ := envelopeMessage(t, storeID, "order.placed", map[string]any{})
		msgs = append(msgs, m)
	}
	e.produce(t, msgs...)
}

func waitDelivered(t *testing.T, e *env, sub uuid.UUID, n int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d delivered", n), func() error {
		stats, err := e.store.SubscriptionStatsAll(context.Background())
		if st := stats[sub]; err != nil || st.Delivered != int64(n) {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	})
}

// limited subscribes store-a's order.placed to url with these limits.
func limited(t *testing.T, e *env, url string, rate float64, burst, slots int) store.Subscription {
	sub, _ := e.subscribe(t, "store-a", url, []string{"order.placed"}, func(s *store.Subscription) {
		s.RateLimit, s.RateBurst, s.MaxConcurrency = rate, burst, slots
	})
	return sub
}

// liveSlots is what the live leases of sub add up to, and by how many
// replicas.
func liveSlots(ctx context.Context, e *env, sub uuid.UUID) (slots, replicas int, err error) {
	err = e.store.Pool().QueryRow(ctx, `SELECT coalesce(sum(l.slots), 0), count(*)
		FROM endpoint_limit_leases l JOIN limit_replicas r USING (replica) WHERE l.subscription_id = $1 AND r.expires_at > now()`,
		sub).Scan(&slots, &replicas)
	return slots, replicas, err
}

// watchLeases checks, until the test ends, that the live shares of sub
// never add up to more than its concurrency limit.
func watchLeases(t *testing.T, e *env, sub uuid.UUID, limit int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		worst := 0
		for ctx.Err() == nil {
			if s, _, err := liveSlots(ctx, e, sub); err == nil {
				worst = max(worst, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- worst
	}()
	t.Cleanup(func() {
		cancel()
		if worst := <-done; worst > limit {
			t.Errorf("leases added up to %d slots; the limit is %d", worst, limit)
		}
	})
}

// mostInWindow is the most arrivals within any window of length w.
func mostInWindow(at []time.Time, w time.Duration) int {
	most := 0
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < w; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

func TestRateLimitHoldsAcrossThreeReplicas(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusOK, 0)
	const limit, burst, replicas, events = 10, 2, 3, 60
	sub := limited(t, e, recv.URL, limit, burst, 10)
	watchLeases(t, e, sub.ID, 10)
	for range replicas {
		e.run(t, Config{})
	}
	produceN(t, e, "store-a", events)
	waitDelivered(t, e, sub.ID, events, 60*time.Second)
	at := recv.times()
	// Each replica's bucket holds at least one token, so the partner may
	// see up to replicas-1 beyond the burst at once, never more over time.
	slack := burst + replicas - 1
	for _, w := range []time.Duration{time.Second, 3 * time.Second} {
		if most, bound := mostInWindow(at, w), int(limit*w.Seconds())+slack; most > bound {
			t.Errorf("%d deliveries within %v; the limit allows %d", most, w, bound)
		}
	}
	span := at[len(at)-1].Sub(at[0])
	if bound := limit*span.Seconds() + float64(slack); float64(len(at)) > bound {
		t.Errorf("%d deliveries in %v; the limit allows %.0f", len(at), span, bound)
	}
	t.Logf("%d deliveries in %v: %.1f/s with %d replicas at %d/s", len(at), span, float64(len(at)-1)/span.Seconds(), replicas, limit)
}

func TestConcurrencyLimitHoldsAcrossThreeReplicas(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusOK, 100*time.Millisecond)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, func(s *store.Subscription) { s.MaxConcurrency = 2 })
	watchLeases(t, e, sub.ID, 2)
	for range 3 {
		e.run(t, Config{})
	}
	produceN(t, e, "store-a", 30)
	waitDelivered(t, e, sub.ID, 30, 60*time.Second)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if recv.most > 2 {
		t.Fatalf("%d attempts in flight at once across the replicas, limit 2", recv.most)
	}
}

func TestABreakerOpenedOnOneReplicaStopsTheOthers(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusBadGateway, 0)
	// One slot per replica, so each replica's breaker sees its failures in turn.
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, func(s *store.Subscription) { s.MaxConcurrency = 3 })
	cfg := Config{BreakerTrips: 3, BreakerOpen: time.Hour, RetrySchedule: []time.Duration{0, time.Hour}}
	for range 3 {
		e.run(t, cfg)
	}
	produceN(t, e, "store-a", 40)
	eventually(t, 30*time.Second, "the breaker recorded as open", func() error {
		var n int
		if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM endpoint_breakers
			WHERE subscription_id = $1 AND open_until > now()`, sub.ID).Scan(&n); err != nil || n != 1 {
			return fmt.Errorf("%d %v", n, err)
		}
		return nil
	})
	// Attempts admitted before the others synced may still arrive.
	time.Sleep(time.Second)
	before := len(recv.times())
	time.Sleep(3 * time.Second)
	if after := len(recv.times()); after != before {
		t.Fatalf("the endpoint got %d more requests after one replica's breaker opened", after-before)
	}
	var waiting int
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries
		WHERE subscription_id = $1 AND attempt_number = 0`, sub.ID).Scan(&waiting); err != nil {
		t.Fatal(err)
	}
	if waiting == 0 || before >= 3*cfg.BreakerTrips {
		t.Fatalf("%d requests reached the endpoint and %d deliveries wait: the others should have stopped without tripping their own", before, waiting)
	}
}

func TestAHalfOpenProbeIsMadeByOneReplica(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusBadGateway, 0)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, func(s *store.Subscription) { s.MaxConcurrency = 3 })
	const open = time.Second
	cfg := Config{BreakerTrips: 1, BreakerOpen: open, RetrySchedule: []time.Duration{0, time.Hour}}
	for range 3 {
		e.run(t, cfg)
	}
	produceN(t, e, "store-a", 40)
	eventually(t, 30*time.Second, "the breaker recorded as open", func() error {
		if n := len(recv.times()); n == 0 {
			return fmt.Errorf("no request yet")
		}
		return nil
	})
	time.Sleep(time.Second)
	// While the endpoint keeps failing, each reopening lets one probe through.
	before := len(recv.times())
	const watch = 5 * time.Second
	time.Sleep(watch)
	if probes, most := len(recv.times())-before, int(watch/open)+1; probes > most {
		t.Fatalf("%d probes in %v with the breaker open %v at a time; at most %d expected from one prober", probes, watch, open, most)
	}
	// Once it heals, the probe closes the breaker for all.
	recv.setStatus(http.StatusOK)
	eventually(t, 30*time.Second, "delivered again", func() error {
		stats, err := e.store.SubscriptionStatsAll(context.Background())
		if st := stats[sub.ID]; err != nil || st.Delivered == 0 {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	})
}

func TestAStoppedReplicaGivesItsShareBack(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusOK, 200*time.Millisecond)
	const limit = 6
	sub := limited(t, e, recv.URL, 0, 0, limit)
	watchLeases(t, e, sub.ID, limit)
	cfg := Config{LimitLease: 2 * time.Second}
	e.run(t, cfg)
	e.run(t, cfg)
	stop := e.runStoppable(t, cfg)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	produceN(t, e, "store-a", 400)
	ctx := context.Background()
	replicas := func() (n int) {
		if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM limit_replicas WHERE expires_at > now()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	eventually(t, 30*time.Second, "three replicas sharing, the slots in use", func() error {
		if s, _, err := liveSlots(ctx, e, sub.ID); replicas() != 3 || s != limit || err != nil {
			return fmt.Errorf("%d replicas, %d slots, %v", replicas(), s, err)
		}
		return nil
	})
	stopped = true
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	if n := replicas(); n != 2 {
		t.Fatalf("%d replicas live after one stopped; it should have let go at once", n)
	}
	eventually(t, cfg.LimitLease, "the two left holding every slot", func() error {
		if s, _, err := liveSlots(ctx, e, sub.ID); s != limit || err != nil {
			return fmt.Errorf("%d slots, %v", s, err)
		}
		return nil
	})
	t.Logf("rebalanced %v after the stop", time.Since(at).Round(time.Millisecond))
}

func TestADeadReplicasLeasesExpire(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusOK, 0)
	const limit = 4
	sub := limited(t, e, recv.URL, 0, 0, limit)
	// A replica that took every slot and then died (no release).
	const lease = 2 * time.Second
	ctx := context.Background()
	// Taken before the call: the lease runs from the transaction's start,
	// which is later, so this is a lower bound on when the lease ends.
	ghostAt := time.Now()
	shares, _, err := e.store.SyncLimits(ctx, store.LimitSync{Replica: "ghost", Lease: lease,
		Wants: []store.LimitWant{{Subscription: sub.ID, Slots: limit}}})
	if err != nil || shares[sub.ID] != limit {
		t.Fatalf("ghost's shares %+v %v", shares, err)
	}
	watchLeases(t, e, sub.ID, limit)
	e.run(t, Config{LimitLease: lease})
	produceN(t, e, "store-a", 40)
	eventually(t, 30*time.Second, "the live replica holding every slot", func() error {
		var s int
		if err := e.store.Pool().QueryRow(ctx, `SELECT slots FROM endpoint_limit_leases
			WHERE subscription_id = $1 AND replica <> 'ghost'`, sub.ID).Scan(&s); err != nil || s != limit {
			return fmt.Errorf("%d slots, %v", s, err)
		}
		return nil
	})
	if took := time.Since(ghostAt); took < lease {
		t.Fatalf("the ghost's slots were taken after %v, before its lease of %v ended", took, lease)
	}
	waitDelivered(t, e, sub.ID, 40, 30*time.Second)
}

// TestTheCircuitStateIsTheSharedBreakers: replica A opens the breaker and
// stops; B and C, which never saw a failure, are the ones polled, and the
// stats (what the status shows) and their gauges say open, until their
// probe succeeds.
func TestTheCircuitStateIsTheSharedBreakers(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusBadGateway, 0)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, func(s *store.Subscription) { s.MaxConcurrency = 3 })
	ctx := context.Background()
	state := func() (string, error) {
		stats, err := e.store.SubscriptionStatsAll(ctx)
		return stats[sub.ID].CircuitState, err
	}
	const trips = 3
	_, stopA := e.start(t, Config{BreakerTrips: trips, BreakerOpen: time.Hour, RetrySchedule: []time.Duration{0, time.Hour}},
		[]string{eventsTopic})
	produceN(t, e, "store-a", trips)
	eventually(t, 30*time.Second, "A's breaker open in the shared record and the stats", func() error {
		if s, err := state(); s != "open" || err != nil {
			return fmt.Errorf("%q %v", s, err)
		}
		return nil
	})
	stopA()
	tried := len(recv.times())

	// B and C re-check the breaker every third of their own BreakerOpen.
	cfg := Config{BreakerTrips: trips, BreakerOpen: time.Second, RetrySchedule: []time.Duration{0, time.Hour}}
	replicas := []*Dispatcher{e.run(t, cfg), e.run(t, cfg)}
	const events = 5
	produceN(t, e, "store-a", events)
	// gauges is what the replicas that have met the endpoint count.
	gauges := func(want float64) error {
		met := 0
		for i, d := range replicas {
			if !slices.Contains(d.endpoints.ids(), sub.ID) {
				continue
			}
			met++
			if got := testutil.ToFloat64(d.metrics.OpenCircuits); got != want {
				return fmt.Errorf("replica %d counts %v open circuits, want %v", i, got, want)
			}
		}
		if met == 0 {
			return fmt.Errorf("no replica has tried the endpoint yet")
		}
		return nil
	}
	eventually(t, 30*time.Second, "B and C hold back: open on the stats and their gauges", func() error {
		if s, err := state(); s != "open" || err != nil {
			return fmt.Errorf("%q %v", s, err)
		}
		return gauges(1)
	})
	if n := len(recv.times()); n != tried {
		t.Fatalf("the endpoint got %d requests while A's breaker was open", n-tried)
	}

	// The endpoint heals and the reopen time comes: one probe closes it for all.
	recv.setStatus(http.StatusOK)
	if _, err := e.store.Pool().Exec(ctx, `UPDATE endpoint_breakers SET open_until = now() WHERE subscription_id = $1`, sub.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "closed on the stats and the gauges, B and C's events delivered", func() error {
		stats, err := e.store.SubscriptionStatsAll(ctx)
		if st := stats[sub.ID]; err != nil || st.CircuitState != "closed" || st.Delivered != events {
			return fmt.Errorf("%q, %d delivered (%v)", st.CircuitState, st.Delivered, err)
		}
		return gauges(0)
	})
}
