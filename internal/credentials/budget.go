package credentials

import (
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// budgets bounds the bcrypt work spent on each client id, before it runs:
// a token bucket (bcrypts per minute, with a burst) and a cap on bcrypts in
// flight at once. A request that finds no token or no free slot is refused
// as throttled without bcrypt. Only secrets that pass the fingerprint
// pre-check (or whose fingerprint is not known yet) ever ask, so a stranger's
// guesses do not spend the real holder's budget.
type budgets struct {
	perMinute   float64
	burst       int
	concurrency int32
	clients     *lru.Cache[string, *budget]
}

type budget struct {
	bucket   *rate.Limiter
	inFlight atomic.Int32
}

func newBudgets(size int, perMinute float64, burst, concurrency int) (*budgets, error) {
	clients, err := lru.New[string, *budget](size)
	if err != nil {
		return nil, err
	}
	return &budgets{perMinute: perMinute, burst: burst, concurrency: int32(concurrency), clients: clients}, nil
}

// acquire takes one bcrypt from clientID's budget, refusing at once (never
// queueing) when none is left; release must be called when it is done.
func (b *budgets) acquire(clientID string, now time.Time) (release func(), ok bool) {
	bg := b.get(clientID)
	if bg.inFlight.Add(1) > b.concurrency {
		bg.inFlight.Add(-1)
		return nil, false
	}
	if !bg.bucket.AllowN(now, 1) {
		bg.inFlight.Add(-1)
		return nil, false
	}
	return func() { bg.inFlight.Add(-1) }, true
}

func (b *budgets) get(clientID string) *budget {
	if bg, ok := b.clients.Get(clientID); ok {
		return bg
	}
	bg := &budget{bucket: rate.NewLimiter(rate.Limit(b.perMinute/60), b.burst)}
	if prev, ok, _ := b.clients.PeekOrAdd(clientID, bg); ok {
		return prev
	}
	return bg
}
