package controllers_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/store"
)

// reportBed is n subscriptions in their own namespace, with their rows in
// their own database, and no manager: the reporter under test is the only
// writer of their status.
type reportBed struct {
	namespace string
	store     *store.Store
	ids       []uuid.UUID
	names     []string
}

func newReportBed(t testing.TB, n int, name func(i int) string) *reportBed {
	t.Helper()
	ctx := context.Background()
	url, err := pg.CreateDatabase(ctx)
	if err == nil {
		_, err = store.Migrate(ctx, url)
	}
	if err != nil {
		t.Fatal(err)
	}
	pool, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	b := &reportBed{namespace: fmt.Sprintf("r-%d", time.Now().UnixNano()), store: store.New(pool),
		ids: make([]uuid.UUID, n), names: make([]string, n)}
	if err := kube.Client.Create(ctx, boundNamespace(b.namespace, testStores...)); err != nil {
		t.Fatal(err)
	}
	// Later tests' managers watch every namespace: leave them nothing.
	t.Cleanup(func() {
		_ = kube.Client.DeleteAllOf(context.Background(), &integrationsv1.WebhookSubscription{}, client.InNamespace(b.namespace))
	})
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			sub := newSubscription(b.namespace, name(i))
			if err := kube.Client.Create(ctx, sub); err != nil {
				return err
			}
			b.ids[i], b.names[i] = uuid.MustParse(string(sub.UID)), sub.Name
			_, err := b.store.UpsertSubscription(ctx, store.Subscription{ID: b.ids[i], StoreID: string(sub.Spec.StoreID),
				Name: sub.Name, TargetURL: sub.Spec.TargetURL, Events: []string{"order.placed"}, IsActive: true})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return b
}

// deliver records one successful delivery for each of ids, as the
// dispatcher's record stage does: counters move, health does not.
func (b *reportBed) deliver(t testing.TB, ids []uuid.UUID) {
	t.Helper()
	s200 := 200
	deltas := make([]store.StatsDelta, len(ids))
	for i, id := range ids {
		deltas[i] = store.StatsDelta{SubscriptionID: id, Delivered: 1, LastAttemptAt: time.Now(), LastHTTPStatus: &s200}
	}
	if err := b.store.RecordOutcomesAndStats(context.Background(), nil, deltas); err != nil {
		t.Fatal(err)
	}
}

// delivered lists the namespace and returns each subscription's
// status.delivery.delivered (-1: no delivery status yet), by name.
func (b *reportBed) delivered(t testing.TB) map[string]int64 {
	t.Helper()
	var list integrationsv1.WebhookSubscriptionList
	if err := kube.Client.List(context.Background(), &list, client.InNamespace(b.namespace)); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, s := range list.Items {
		out[s.Name] = -1
		if s.Status.Delivery != nil {
			out[s.Name] = s.Status.Delivery.Delivered
		}
	}
	return out
}

// countAtLeast is how many subscriptions show at least n deliveries.
func countAtLeast(delivered map[string]int64, n int64) int {
	c := 0
	for _, d := range delivered {
		if d >= n {
			c++
		}
	}
	return c
}

// startReporter runs r until the test ends.
func startReporter(t testing.TB, r *controllers.StatusReporter) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// counterBound is the documented staleness bound of counters:
// (⌈N/(B×I)⌉ + 1) intervals.
func counterBound(n int, budget float64, interval time.Duration) time.Duration {
	return time.Duration(math.Ceil(float64(n)/(budget*interval.Seconds()))+1) * interval
}

// 300 subscriptions whose counters all moved, a budget of 50 writes/s: the
// writes counted stay within the token bucket (burst + budget × elapsed)
// and every subscription's counters are refreshed within the bound.
func TestStatusWritesStayWithinTheBudget(t *testing.T) {
	const n, budget, interval = 300, 50.0, 2 * time.Second
	b := newReportBed(t, n, func(i int) string { return fmt.Sprintf("busy-%03d", i) })
	writes := &atomic.Int64{}
	reporter := &controllers.StatusReporter{Client: countingClient{Client: kube.Client, writes: writes}, Store: b.store,
		Log: logr.Discard(), Interval: interval, WriteBudget: budget, WriteBurst: int(budget)}
	b.deliver(t, b.ids)
	began := time.Now()
	startReporter(t, reporter)
	for round := int64(1); round <= 2; round++ {
		if round == 2 {
			b.deliver(t, b.ids) // counter-only changes this time
		}
		moved := time.Now()
		bound := counterBound(n, budget, interval)
		eventually(t, bound+2*time.Second, fmt.Sprintf("round %d: every subscription's counters refreshed", round), func() error {
			if got := countAtLeast(b.delivered(t), round); got < n {
				return fmt.Errorf("%d of %d refreshed after %s (bound %s)", got, n, time.Since(moved).Round(time.Millisecond), bound)
			}
			return nil
		})
		elapsed := time.Since(began).Seconds()
		got := float64(writes.Load())
		allowed := budget + budget*elapsed*1.05
		t.Logf("round %d: %.0f writes in %.1fs (%.1f/s, budget %.0f/s, burst %.0f)", round, got, elapsed, got/elapsed, budget, budget)
		if got > allowed {
			t.Fatalf("%.0f writes in %.1fs: more than burst + budget × elapsed = %.0f", got, elapsed, allowed)
		}
		if got < float64(n)*float64(round) {
			t.Fatalf("%.0f writes for %d subscriptions in %d rounds", got, n, round)
		}
	}
}

// One subscription among hundreds of counter-only changes starts failing
// and dead-letters: its Healthy condition reaches the resource within one
// interval although it is last in line and the budget takes several
// intervals for the counters; its Event fires once however many passes
// follow.
func TestAHealthTransitionOvertakesCounterChanges(t *testing.T) {
	const n, budget, interval = 200, 20.0, 2 * time.Second
	// The victim sorts last: without priority it would be written last.
	b := newReportBed(t, n, func(i int) string {
		if i == n-1 {
			return "zz-victim"
		}
		return fmt.Sprintf("busy-%03d", i)
	})
	victim := b.ids[n-1]
	// Every status written once first, with no budget to speak of.
	b.deliver(t, b.ids)
	primer := &controllers.StatusReporter{Client: kube.Client, Store: b.store, Log: logr.Discard(), WriteBudget: 10000}
	if err := primer.ReportDeliveries(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countAtLeast(b.delivered(t), 1); got != n {
		t.Fatalf("primed %d of %d", got, n)
	}

	b.deliver(t, b.ids[:n-1])
	s500 := 500
	reason := "5 attempts failed; last: the endpoint answered 500"
	if err := b.store.RecordOutcomesAndStats(context.Background(), nil, []store.StatsDelta{{SubscriptionID: victim, FailedAttempts: 5,
		DeadLettered: 1, TrailingFailures: 5, LastAttemptAt: time.Now(), LastHTTPStatus: &s500, LastError: "the endpoint answered 500",
		DeadLetterReason: reason}}); err != nil {
		t.Fatal(err)
	}
	recorder := events.NewFakeRecorder(10 * n)
	reporter := &controllers.StatusReporter{Client: kube.Client, Store: b.store, Recorder: recorder, Log: logr.Discard(),
		Interval: interval, WriteBudget: budget, WriteBurst: int(budget)}
	startReporter(t, reporter)
	began := time.Now()
	eventually(t, interval+time.Second, "the victim's Healthy=False within one interval", func() error {
		sub := &integrationsv1.WebhookSubscription{}
		if err := kube.Client.Get(context.Background(), client.ObjectKey{Namespace: b.namespace, Name: "zz-victim"}, sub); err != nil {
			return err
		}
		c := meta.FindStatusCondition(sub.Status.Conditions, controllers.ConditionHealthy)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonDeliveriesFailing {
			return fmt.Errorf("Healthy: %+v", c)
		}
		return nil
	})
	refreshed := countAtLeast(b.delivered(t), 2)
	t.Logf("victim written after %s, %d of %d counters refreshed by then", time.Since(began).Round(time.Millisecond), refreshed, n-1)
	if refreshed == n-1 {
		t.Fatal("every counter was refreshed as fast as the victim: the budget did not hold them back, nothing was shown")
	}

	// More traffic for the victim and passes enough to refresh everyone:
	// still one DeliveriesDeadLettered Event.
	b.deliver(t, b.ids[n-1:])
	eventually(t, counterBound(n, budget, interval)+2*time.Second, "every counter refreshed", func() error {
		d := b.delivered(t)
		if got := countAtLeast(d, 2); got < n {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
	deadLettered := 0
	for len(recorder.Events) > 0 {
		if e := <-recorder.Events; strings.Contains(e, "DeliveriesDeadLettered") && strings.Contains(e, "zz-victim") {
			deadLettered++
		}
	}
	if deadLettered != 1 {
		t.Fatalf("%d DeliveriesDeadLettered Events for one transition", deadLettered)
	}
}

// slowClient holds status patches of one object until their context ends,
// as an API server stuck on one write does.
type slowClient struct {
	client.Client
	slow    string
	holding *atomic.Bool
}

func (c slowClient) Status() client.SubResourceWriter {
	return slowStatus{SubResourceWriter: c.Client.Status(), c: c}
}

type slowStatus struct {
	client.SubResourceWriter
	c slowClient
}

func (s slowStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if obj.GetName() == s.c.slow && s.c.holding.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// A patch that hangs does not hold up the others, the pass ends within
// its interval, and the hung object is written by a later pass.
func TestASlowPatchDoesNotHoldUpTheOthers(t *testing.T) {
	const n, interval = 30, 4 * time.Second
	b := newReportBed(t, n, func(i int) string { return fmt.Sprintf("sub-%02d", i) })
	holding := &atomic.Bool{}
	holding.Store(true)
	reporter := &controllers.StatusReporter{Client: slowClient{Client: kube.Client, slow: "sub-00", holding: holding},
		Store: b.store, Log: logr.Discard(), Interval: interval, WriteBudget: 1000, Workers: 2, PatchTimeout: time.Minute}
	b.deliver(t, b.ids)
	began := time.Now()
	if err := reporter.ReportDeliveries(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > interval+time.Second {
		t.Fatalf("the pass took %s, longer than its interval %s", took, interval)
	}
	d := b.delivered(t)
	if d["sub-00"] != -1 {
		t.Fatalf("the hung patch was written: %d", d["sub-00"])
	}
	if got := countAtLeast(d, 1); got != n-1 {
		t.Fatalf("%d of the %d others written while one patch hung", got, n-1)
	}
	holding.Store(false)
	if err := reporter.ReportDeliveries(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := b.delivered(t)["sub-00"]; got != 1 {
		t.Fatalf("the once-hung subscription after the next pass: %d", got)
	}
}
