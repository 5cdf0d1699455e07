package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/ss3dev/integration-operator/internal/store"
)

// tokens takes a subscription's rate-limit tokens from its bucket in
// Postgres, shared by every replica: the attempts that ask while a take is
// in flight are served together by the next, so a replica makes one round
// trip per batch of attempts, not per attempt, and a token is only taken
// to be spent at once (so the partner sees the bucket's rate and burst).
type tokens struct {
	store *store.Store
	key   endpointKey

	mu      sync.Mutex
	waiting []chan tokenGrant
	taking  bool
}

// tokenGrant: a token (wait 0), or how long until this attempt's turn.
type tokenGrant struct {
	wait time.Duration
	err  error
}

// maxTokenWait bounds how far ahead a delivery without a token is put.
const maxTokenWait = time.Minute

func newTokens(st *store.Store, key endpointKey) *tokens { return &tokens{store: st, key: key} }

// take gets a token, or how long to wait for one.
func (t *tokens) take(ctx context.Context) (time.Duration, error) {
	ch := make(chan tokenGrant, 1)
	t.mu.Lock()
	t.waiting = append(t.waiting, ch)
	if !t.taking {
		t.taking = true
		go t.takeAll(context.WithoutCancel(ctx))
	}
	t.mu.Unlock()
	g := <-ch
	return g.wait, g.err
}

func (t *tokens) takeAll(ctx context.Context) {
	for {
		t.mu.Lock()
		batch := t.waiting
		t.waiting = nil
		if len(batch) == 0 {
			t.taking = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, next, err := t.store.TakeTokens(tctx, t.key.subscription, t.key.rate, t.key.burst, len(batch))
		cancel()
		for i, ch := range batch {
			switch {
			case err != nil:
				ch <- tokenGrant{err: err}
			case i < got:
				ch <- tokenGrant{}
			default:
				// Spread those refused over their turns, not all at the next token.
				turn := next + time.Duration(float64(i-got)/t.key.rate*float64(time.Second))
				ch <- tokenGrant{wait: max(min(turn, maxTokenWait), time.Millisecond)}
			}
		}
	}
}
