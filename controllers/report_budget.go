package controllers

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Defaults of the reporter's write budget: an API server shrugs at 20
// writes/s, and a few patches in flight keep one slow object from holding
// up the rest.
const (
	DefaultStatusWriteBudget = 20.0
	defaultStatusWorkers     = 4
	defaultPatchTimeout      = 5 * time.Second
)

// statusWrite is one object's status patch, computed by a pass.
type statusWrite struct {
	kind string
	uid  types.UID
	// health: the write carries something a user acts on (a condition's
	// status or reason, circuit state, new dead letters or rejections); it
	// goes ahead of counter-only writes.
	health bool
	patch  func(ctx context.Context) error
	// after runs once the patch succeeded: Events and wake-ups belong to a
	// transition that reached the resource, so they fire once.
	after func()
}

// writeBudget paces the reporter's status patches: at most PerSecond
// writes/s (bursting to Burst) across all objects, health first, then the
// objects whose status was refreshed longest ago. Between passes it
// remembers when each object was last written and which patches are still
// in flight.
//
// With N objects whose counters keep moving, B writes/s and a pass every I,
// a pass writes up to B×I objects (minus health writes), so each object's
// counters are at most (⌈N/(B×I)⌉ + 1)×I old, about N/B + I: at the
// defaults (20/s, 10s) 10,000 busy subscriptions are refreshed every ~8
// minutes, while health transitions still land in the next pass as long as
// fewer than B×I of them happen in one interval.
type writeBudget struct {
	limiter      *rate.Limiter
	workers      int
	patchTimeout time.Duration

	mu       sync.Mutex
	written  map[types.UID]refresh
	inFlight map[types.UID]bool
}

// refresh is when an object's status was last written.
type refresh struct {
	kind string
	at   time.Time
}

func newWriteBudget(perSecond float64, burst, workers int, patchTimeout time.Duration) *writeBudget {
	if perSecond <= 0 {
		perSecond = DefaultStatusWriteBudget
	}
	if burst <= 0 {
		burst = max(1, int(perSecond))
	}
	return &writeBudget{limiter: rate.NewLimiter(rate.Limit(perSecond), burst), workers: max(1, workers),
		patchTimeout: patchTimeout, written: map[types.UID]refresh{}, inFlight: map[types.UID]bool{}}
}

// passResult says what a pass did, for metrics.
type passResult struct {
	written  map[writeLabel]int
	deferred map[string]int // by kind
}

type writeLabel struct{ kind, change string }

// run patches writes until passCtx ends, health first and then oldest
// refresh first, within the budget. It waits for its patches only until
// passCtx ends: a slow patch runs on under its own timeout, its object is
// skipped until it finishes, and a failed one is simply computed again by a
// later pass.
func (b *writeBudget) run(ctx, passCtx context.Context, writes []statusWrite, logFailure func(statusWrite, error)) passResult {
	res := passResult{written: map[writeLabel]int{}, deferred: map[string]int{}}
	var resMu sync.Mutex
	b.mu.Lock()
	slices.SortStableFunc(writes, func(x, y statusWrite) int {
		if x.health != y.health {
			if x.health {
				return -1
			}
			return 1
		}
		return b.written[x.uid].at.Compare(b.written[y.uid].at)
	})
	b.mu.Unlock()

	sem := make(chan struct{}, b.workers)
	var wg sync.WaitGroup
send:
	for i, w := range writes {
		if !b.start(w.uid) {
			res.deferred[w.kind]++
			continue
		}
		// Wait fails at once when the budget cannot give a token before the
		// pass ends: the rest waits for a later pass.
		if err := b.limiter.Wait(passCtx); err != nil {
			b.finish(w, false)
			deferRest(res.deferred, writes[i:])
			break
		}
		select {
		case sem <- struct{}{}:
		case <-passCtx.Done():
			b.finish(w, false)
			deferRest(res.deferred, writes[i:])
			break send
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Not passCtx: a patch already sent gets its full timeout.
			pctx, cancel := context.WithTimeout(ctx, b.patchTimeout)
			err := w.patch(pctx)
			cancel()
			b.finish(w, err == nil)
			if err != nil {
				logFailure(w, err)
				return
			}
			resMu.Lock()
			res.written[writeLabel{w.kind, changeLabel(w.health)}]++
			resMu.Unlock()
			if w.after != nil {
				w.after()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-passCtx.Done():
	}
	// A copy: stragglers still count into res.written.
	resMu.Lock()
	defer resMu.Unlock()
	return passResult{written: maps.Clone(res.written), deferred: res.deferred}
}

// start marks uid in flight; false when a patch of it still is.
func (b *writeBudget) start(uid types.UID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight[uid] {
		return false
	}
	b.inFlight[uid] = true
	return true
}

func (b *writeBudget) finish(w statusWrite, written bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.inFlight, w.uid)
	if written {
		b.written[w.uid] = refresh{kind: w.kind, at: time.Now()}
	}
}

// forget drops the refresh times of objects no longer listed, so the map
// does not grow with churn.
func (b *writeBudget) forget(kind string, listed map[types.UID]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for uid, r := range b.written {
		if r.kind == kind && !listed[uid] {
			delete(b.written, uid)
		}
	}
}

func deferRest(deferred map[string]int, rest []statusWrite) {
	for _, w := range rest {
		deferred[w.kind]++
	}
}

func changeLabel(health bool) string {
	if health {
		return "health"
	}
	return "counters"
}

// conditionsMoved reports whether a condition appeared, went, or changed
// status or reason; a new message alone (a failure count) is a counter.
func conditionsMoved(before, after []metav1.Condition) bool {
	if len(before) != len(after) {
		return true
	}
	key := func(c metav1.Condition) string { return c.Type + "\x00" + string(c.Status) + "\x00" + c.Reason }
	a, b := make([]string, 0, len(before)), make([]string, 0, len(after))
	for i := range before {
		a, b = append(a, key(before[i])), append(b, key(after[i]))
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Compare(a, b) != 0
}
