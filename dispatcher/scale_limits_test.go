//go:build scale

package dispatcher

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestScaleRateLimitAcrossReplicas is make bench-scale's figure for shared
// limits: three replicas deliver a backlog to one subscription limited to
// 10/s, and it prints the rate the receiver saw (after the first second's
// burst) against the limit.
//
//	go test -tags scale -run ScaleRateLimit -v ./dispatcher/
func TestScaleRateLimitAcrossReplicas(t *testing.T) {
	e := startEnv(t)
	recv := newArrivals(t, http.StatusOK, 0)
	const limit, burst, replicas, events = 10, 1, 3, 200
	sub := limited(t, e, recv.URL, limit, burst, 10)
	for range replicas {
		e.run(t, Config{})
	}
	produceN(t, e, "store-a", events)
	waitDelivered(t, e, sub.ID, events, 2*time.Minute)
	at := recv.times()
	var steady []time.Time
	for _, a := range at {
		if a.Sub(at[0]) >= time.Second {
			steady = append(steady, a)
		}
	}
	span := steady[len(steady)-1].Sub(steady[0])
	seen := float64(len(steady)-1) / span.Seconds()
	fmt.Printf("shared rate limit: %d replicas, limit %d/s (burst %d): receiver saw %.2f/s over %v (%d deliveries); most in any 1s: %d\n",
		replicas, limit, burst, seen, span.Round(time.Millisecond), len(steady), mostInWindow(at, time.Second))
	if seen > limit*1.05 {
		t.Errorf("the receiver saw %.2f/s; the limit is %d/s", seen, limit)
	}
}
