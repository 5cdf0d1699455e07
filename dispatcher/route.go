package dispatcher

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/go-logr/logr"

	"github.com/ss3dev/integration-operator/internal/connectors/opener"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Stage 2, route: each event goes to the active subscriptions of its store
// whose event list matches, exactly or as `resource.*`, and to the active
// connectors of its store that subscribe to it and whose adapter handles
// it. The index lives in memory; before each batch a one-row query says
// whether any subscription or connector changed, and only then is it
// reloaded.

// patterns are event types, exact or `resource.*`.
type patterns struct {
	exact    map[string]bool
	prefixes []string // "order." for "order.*"
}

func newPatterns(list []string) patterns {
	p := patterns{exact: map[string]bool{}}
	for _, e := range list {
		if prefix, ok := strings.CutSuffix(e, "*"); ok {
			p.prefixes = append(p.prefixes, prefix)
		} else {
			p.exact[e] = true
		}
	}
	return p
}

func (p patterns) matches(eventType string) bool {
	if p.exact[eventType] {
		return true
	}
	for _, prefix := range p.prefixes {
		if strings.HasPrefix(eventType, prefix) {
			return true
		}
	}
	return false
}

type route struct {
	sub store.Subscription
	patterns
}

type connectorRoute struct {
	config  store.ConnectorConfig
	handles map[string]bool
	patterns
}

type routes struct {
	subscriptions map[string][]*route          // by store id
	connectors    map[string][]*connectorRoute // by store id
}

// Router holds the current index; Match is safe for concurrent use,
// Refresh is called by the one consume loop.
type Router struct {
	store   *store.Store
	opener  *opener.Opener
	current atomic.Pointer[routes]
	version string
	log     logr.Logger
}

func newRouter(st *store.Store, op *opener.Opener, log logr.Logger) *Router {
	r := &Router{store: st, opener: op, log: log}
	r.current.Store(&routes{})
	return r
}

// Match returns the subscriptions event goes to.
func (r *Router) Match(e Event) []store.Subscription {
	var out []store.Subscription
	for _, rt := range r.current.Load().subscriptions[e.StoreID] {
		if rt.matches(e.Type) {
			out = append(out, rt.sub)
		}
	}
	return out
}

// MatchConnectors returns the connectors event goes to.
func (r *Router) MatchConnectors(e Event) []store.ConnectorConfig {
	var out []store.ConnectorConfig
	for _, rt := range r.current.Load().connectors[e.StoreID] {
		if rt.handles[e.Type] && rt.matches(e.Type) {
			out = append(out, rt.config)
		}
	}
	return out
}

// Refresh reloads the index if any subscription changed since the last load.
func (r *Router) Refresh(ctx context.Context) error {
	version, err := r.store.RoutingVersion(ctx)
	if err != nil || version == r.version {
		return err
	}
	subs, err := r.store.ActiveSubscriptions(ctx)
	if err != nil {
		return err
	}
	configs, err := r.store.ActiveConnectorConfigs(ctx)
	if err != nil {
		return err
	}
	idx := routes{subscriptions: map[string][]*route{}, connectors: map[string][]*connectorRoute{}}
	for _, s := range subs {
		idx.subscriptions[s.StoreID] = append(idx.subscriptions[s.StoreID], &route{sub: s, patterns: newPatterns(s.Events)})
	}
	for _, c := range configs {
		if len(c.EventSubscriptions) == 0 {
			continue
		}
		adapter, err := r.opener.Open(c.ID, c.StoreID, c.ConnectorType, c.Settings)
		if err != nil {
			// The manager reports this on the ConnectorConfig's status.
			r.log.Info("connector left out of routing: its adapter does not open", "configId", c.ID, "reason", err.Error())
			continue
		}
		rt := &connectorRoute{config: c, handles: map[string]bool{}, patterns: newPatterns(c.EventSubscriptions)}
		for _, t := range adapter.Handles() {
			rt.handles[t] = true
		}
		idx.connectors[c.StoreID] = append(idx.connectors[c.StoreID], rt)
	}
	r.current.Store(&idx)
	r.version = version
	r.log.Info("routing index reloaded", "activeSubscriptions", len(subs), "activeConnectors", len(configs))
	return nil
}
