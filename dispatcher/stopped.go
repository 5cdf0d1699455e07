package dispatcher

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// A replica that was not running (SIGSTOP, a frozen VM, a node under
// memory pressure) sees its attempts time out although the endpoint may
// have answered in time: the time it spent stopped is not the endpoint's
// fault. A watcher ticks often and notes every gap between ticks far
// longer than a tick; an attempt that got no answer while such a gap
// overlapped it is judged our own outage (no attempt spent, nothing
// counted against the endpoint's breaker) and retried.

const (
	stoppedTick = 100 * time.Millisecond
	// stoppedGap is a gap between ticks no busy scheduler makes.
	stoppedGap = 2 * time.Second
	// stoppedKept bounds the gaps remembered (attempts last at most their
	// timeout, so old gaps no longer matter).
	stoppedKept = 32
)

type span struct{ from, to time.Time }

// stops remembers when this process was not running.
type stops struct {
	mu    sync.Mutex
	last  time.Time
	spans []span
}

func newStops() *stops { return &stops{last: time.Now()} }

func (s *stops) watch(ctx context.Context) {
	wait.NonSlidingUntilWithContext(ctx, func(context.Context) { s.tick(time.Now()) }, stoppedTick)
}

func (s *stops) tick(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.last) > stoppedGap {
		s.spans = append(s.spans, span{s.last, now})
		if len(s.spans) > stoppedKept {
			s.spans = s.spans[len(s.spans)-stoppedKept:]
		}
	}
	s.last = now
}

// during says whether the process was stopped at some time between from
// and to. A gap still open (the watcher has not run since the process
// resumed) counts too.
func (s *stops) during(from, to time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if open := to.Sub(s.last); open > stoppedGap {
		return open, true
	}
	for i := len(s.spans) - 1; i >= 0; i-- {
		if sp := s.spans[i]; sp.from.Before(to) && sp.to.After(from) {
			return sp.to.Sub(sp.from), true
		}
	}
	return 0, false
}
