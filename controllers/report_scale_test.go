//go:build scale

package controllers_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ss3dev/integration-operator/controllers"
)

// make bench-scale: SCALE_SUBSCRIPTIONS (10,000) subscriptions in envtest,
// all with traffic in Postgres every interval, reported with the default
// budget (SCALE_STATUS_BUDGET, 20/s): API-server writes/s and pass time
// against the budget, and the counters' staleness bound.
func TestReportScale(t *testing.T) {
	n := envInt(t, "SCALE_SUBSCRIPTIONS", 10000)
	budget := float64(envInt(t, "SCALE_STATUS_BUDGET", int(controllers.DefaultStatusWriteBudget)))
	const interval, passes = 10 * time.Second, 4
	began := time.Now()
	b := newReportBed(t, n, func(i int) string { return fmt.Sprintf("busy-%05d", i) })
	fmt.Printf("bench-scale status reporter: %d subscriptions created with rows in %s\n", n, time.Since(began).Round(time.Second))

	metrics, err := controllers.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	writes := &atomic.Int64{}
	reporter := &controllers.StatusReporter{Client: countingClient{Client: kube.Client, writes: writes}, Store: b.store,
		Log: logr.Discard(), Interval: interval, WriteBudget: budget, Metrics: metrics}
	ctx := context.Background()
	start := time.Now()
	var longest time.Duration
	for p := range passes {
		b.deliver(t, b.ids) // every subscription's counters move every interval
		passBegan := time.Now()
		if err := reporter.ReportDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
		took := time.Since(passBegan)
		longest = max(longest, took)
		fmt.Printf("  pass %d: %s (interval %s), %d writes so far\n", p+1, took.Round(time.Millisecond), interval, writes.Load())
		time.Sleep(time.Until(passBegan.Add(interval)))
	}
	elapsed := time.Since(start)
	rate := float64(writes.Load()) / elapsed.Seconds()
	deferred := testutil.ToFloat64(metrics.StatusWritesDeferred.WithLabelValues("WebhookSubscription"))
	fmt.Printf("  API-server writes: %d in %s = %.1f/s against a budget of %.0f/s (burst %.0f); %.0f deferred to later passes\n",
		writes.Load(), elapsed.Round(time.Millisecond), rate, budget, budget, deferred)
	fmt.Printf("  longest pass %s against an interval of %s; counters of %d busy subscriptions refreshed within %s\n",
		longest.Round(time.Millisecond), interval, n, counterBound(n, budget, interval))
	readBegan := time.Now()
	if _, err := b.store.SubscriptionStatsAll(ctx); err != nil {
		t.Fatal(err)
	}
	b.delivered(t)
	fmt.Printf("  of a pass, reading stats and listing the subscriptions takes %s; the rest is writes paced by the budget\n",
		time.Since(readBegan).Round(time.Millisecond))
	fmt.Printf("  (the reporter before the budget: one write per moved subscription per pass, %d/s)\n", n/int(interval.Seconds()))
	if rate > budget*1.05+budget/elapsed.Seconds() {
		t.Fatalf("%.1f writes/s over a budget of %.0f/s", rate, budget)
	}
	if longest > interval+time.Second {
		t.Fatalf("a pass took %s, longer than its interval", longest)
	}
}

func envInt(t *testing.T, name string, fallback int) int {
	v := os.Getenv(name)
	if v == "" {
		return fallback
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}
