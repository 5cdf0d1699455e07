package dispatcher

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 2, route: each event goes to the active subscriptions of its store
// whose event list matches, exactly or as `resource.*`. The index lives in
// memory; before each batch a one-row query says whether any subscription
// changed, and only then is it reloaded.

type route struct {
	sub      store.Subscription
	exact    map[string]bool
	prefixes []string // "order." for "order.*"
}

func (r *route) matches(eventType string) bool {
	if r.exact[eventType] {
		return true
	}
	for _, p := range r.prefixes {
		if strings.HasPrefix(eventType, p) {
			return true
		}
	}
	return false
}

type routes map[string][]*route // by store id

// Router holds the current index; Match is safe for concurrent use,
// Refresh is called by the one consume loop.
type Router struct {
	store   *store.Store
	current atomic.Pointer[routes]
	version string
	log     logr.Logger
}

func newRouter(st *store.Store, log logr.Logger) *Router {
	r := &Router{store: st, log: log}
	r.current.Store(&routes{})
	return r
}

// Match returns the subscriptions event goes to.
func (r *Router) Match(e Event) []store.Subscription {
	var out []store.Subscription
	for _, rt := range (*r.current.Load())[e.StoreID] {
		if rt.matches(e.Type) {
			out = append(out, rt.sub)
		}
	}
	return out
}

// Refresh reloads the index if any subscription changed since the last load.
func (r *Router) Refresh(ctx context.Context) error {
	version, err := r.store.SubscriptionsVersion(ctx)
	if err != nil || version == r.version {
		return err
	}
	subs, err := r.store.ActiveSubscriptions(ctx)
	if err != nil {
		return err
	}
	idx := routes{}
	for _, s := range subs {
		rt := &route{sub: s, exact: map[string]bool{}}
		for _, e := range s.Events {
			if prefix, ok := strings.CutSuffix(e, "*"); ok {
				rt.prefixes = append(rt.prefixes, prefix)
			} else {
				rt.exact[e] = true
			}
		}
		idx[s.StoreID] = append(idx[s.StoreID], rt)
	}
	r.current.Store(&idx)
	r.version = version
	r.log.Info("routing index reloaded", "activeSubscriptions", len(subs), "stores", len(idx))
	return nil
}
