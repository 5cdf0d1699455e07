// Package stream is the live event stream for store apps: Server-Sent
// Events over HTTP, where an app authenticated with its ApiCredential
// receives its own store's events as they happen, only the event types its
// scopes allow. A hub keeps each store's recent events in a bounded window
// (by count per store, age, and bytes over all stores), so a client
// reconnecting with Last-Event-ID misses nothing still in it; publishing
// never waits for a client (one that falls behind by more than its buffer,
// or whose socket takes no write for WriteTimeout, is dropped, and
// reconnects to resume); and each credential, and the replica, may hold
// only so many streams at once.
package stream

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Event is one platform event, as the stream sends it.
type Event struct {
	ID      string // the event id: the SSE id, and what Last-Event-ID names
	StoreID string
	Type    string
	Data    []byte // the event's payload as produced
	// At is when the hub received it (for latency measurements).
	At time.Time
}

// Principal is who a request speaks for.
type Principal struct {
	CredentialID string
	StoreID      string
	Scopes       []string
}

// Authenticate finds and checks the credential a request carries; status
// (401, 403, 429, 503) is the answer to give when it cannot be used.
type Authenticate func(r *http.Request) (p Principal, status int)

// scopeResources maps a read scope to the event resources it opens.
var scopeResources = map[string][]string{
	"orders:read":    {"order"},
	"inventory:read": {"inventory"},
	"catalog:read":   {"product", "catalog"},
	"customers:read": {"customer"},
}

// resources lists the event resources (the part before the first dot of
// an event type) that scopes allow.
func resources(scopes []string) map[string]bool {
	out := map[string]bool{}
	for _, s := range scopes {
		for _, r := range scopeResources[s] {
			out[r] = true
		}
	}
	return out
}

func allowed(res map[string]bool, eventType string) bool {
	r, _, _ := strings.Cut(eventType, ".")
	return res[r]
}

// Config bounds the hub.
type Config struct {
	// Window events per store are kept for resuming.
	Window int
	// ClientBuffer events may wait for a client; one further behind is dropped.
	ClientBuffer int
	// WindowAge: older events are not kept for resuming.
	WindowAge time.Duration
	// WindowBytes bounds the window over all stores (payloads included).
	WindowBytes int64
	// PerCredential streams at most per credential, on this replica.
	PerCredential int
	// MaxClients streams at most on this replica; more are refused with
	// 503 and Retry-After (the client tries again, maybe elsewhere).
	MaxClients int
	// Heartbeat is how often an idle stream gets a comment, so proxies
	// keep it open and a dead client is noticed.
	Heartbeat time.Duration
	// WriteTimeout bounds one write to a client: a socket that takes
	// nothing for this long is closed.
	WriteTimeout time.Duration
	// Metrics, when set, count streams, drops, refusals and the window.
	Metrics *Metrics
}

func (c *Config) defaults() {
	if c.Window <= 0 {
		c.Window = 1000
	}
	if c.ClientBuffer <= 0 {
		c.ClientBuffer = 256
	}
	if c.WindowAge <= 0 {
		c.WindowAge = 5 * time.Minute
	}
	if c.WindowBytes <= 0 {
		c.WindowBytes = 64 << 20
	}
	if c.PerCredential <= 0 {
		c.PerCredential = 5
	}
	if c.MaxClients <= 0 {
		c.MaxClients = 10000
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
}

// Hub fans events out to the streams of their store.
type Hub struct {
	cfg     Config
	metrics *Metrics

	mu     sync.Mutex
	stores map[string]*storeLog
	// arrivals and bytes: the window in arrival order, and its size.
	arrivals     []arrival
	arrivalsHead int
	bytes        int64
	open         map[string]int // streams per credential
	clients      int
	// Dropped counts clients dropped for falling behind.
	dropped int
	// closing ends every stream (shutdown: streams never go idle by
	// themselves, so http.Server.Shutdown would wait for them).
	closing   chan struct{}
	closeOnce sync.Once
}

type client struct {
	res     map[string]bool
	ch      chan Event
	dropped bool
}

// New returns a hub.
func New(cfg Config) *Hub {
	cfg.defaults()
	return &Hub{cfg: cfg, metrics: cfg.Metrics, stores: map[string]*storeLog{}, open: map[string]int{}, closing: make(chan struct{})}
}

// Close ends every stream; clients reconnect (to another replica) and resume.
func (h *Hub) Close() { h.closeOnce.Do(func() { close(h.closing) }) }

// Publish hands e to its store's streams without waiting for any.
func (h *Hub) Publish(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	log := h.store(e.StoreID)
	h.keep(log, e)
	for c := range log.subs {
		if !allowed(c.res, e.Type) {
			continue
		}
		select {
		case c.ch <- e:
		default:
			// Behind by a whole buffer: dropped, so nobody else waits.
			c.dropped = true
			close(c.ch)
			delete(log.subs, c)
			h.dropped++
			if h.metrics != nil {
				h.metrics.Dropped.WithLabelValues(DropBehind).Inc()
			}
		}
	}
}

// Dropped says how many clients were dropped for falling behind.
func (h *Hub) Dropped() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

func (h *Hub) store(id string) *storeLog {
	log, ok := h.stores[id]
	if !ok {
		log = &storeLog{id: id, subs: map[*client]struct{}{}}
		h.stores[id] = log
	}
	return log
}

var (
	errTooMany = errors.New("too many streams for this credential")
	errFull    = errors.New("this replica holds as many streams as it may; try again")
)

// subscribe registers a stream and returns the events after lastID still
// in the window (all it holds when lastID is not found: resumed is false),
// atomically with the registration, so nothing is missed or sent twice.
func (h *Hub) subscribe(p Principal, res map[string]bool, lastID string) (c *client, backlog []Event, resumed bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.clients >= h.cfg.MaxClients:
		h.refused(RefusedReplicaLimit)
		return nil, nil, false, errFull
	case h.open[p.CredentialID] >= h.cfg.PerCredential:
		h.refused(RefusedCredentialLimit)
		return nil, nil, false, errTooMany
	}
	h.open[p.CredentialID]++
	h.clients++
	if h.metrics != nil {
		h.metrics.Clients.Set(float64(h.clients))
	}
	h.evict(time.Now()) // a quiet store's window still ages
	log := h.store(p.StoreID)
	// Without Last-Event-ID a stream starts with what happens next.
	start := log.len()
	if lastID != "" {
		start = 0 // not found: all the window holds, after a gap event
		for i := log.len() - 1; i >= 0; i-- {
			if log.at(i).ID == lastID {
				start, resumed = i+1, true
				break
			}
		}
	}
	for i := start; i < log.len(); i++ {
		if e := log.at(i); allowed(res, e.Type) {
			backlog = append(backlog, e)
		}
	}
	c = &client{res: res, ch: make(chan Event, h.cfg.ClientBuffer)}
	log.subs[c] = struct{}{}
	return c, backlog, resumed, nil
}

func (h *Hub) refused(reason string) {
	if h.metrics != nil {
		h.metrics.Refused.WithLabelValues(reason).Inc()
	}
}

func (h *Hub) unsubscribe(p Principal, c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open[p.CredentialID]--
	if h.open[p.CredentialID] <= 0 {
		delete(h.open, p.CredentialID)
	}
	h.clients--
	if h.metrics != nil {
		h.metrics.Clients.Set(float64(h.clients))
	}
	if log, ok := h.stores[p.StoreID]; ok {
		if _, ok := log.subs[c]; ok {
			delete(log.subs, c)
			close(c.ch)
		}
		h.forgetIfIdle(log)
	}
}

// Handler serves GET: the stream of the authenticated credential's store.
func (h *Hub) Handler(auth Authenticate) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		p, status := auth(r)
		if status != http.StatusOK {
			http.Error(w, http.StatusText(status), status)
			return
		}
		res := resources(p.Scopes)
		if len(res) == 0 {
			http.Error(w, "the credential holds no scope that reads events (orders:read, inventory:read, catalog:read, customers:read)", http.StatusForbidden)
			return
		}
		c, backlog, resumed, err := h.subscribe(p, res, r.Header.Get("Last-Event-ID"))
		if err != nil {
			w.Header().Set("Retry-After", "5")
			status := http.StatusTooManyRequests
			if errors.Is(err, errFull) {
				status = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), status)
			return
		}
		defer h.unsubscribe(p, c)
		hd := w.Header()
		hd.Set("Content-Type", "text/event-stream")
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		w.WriteHeader(http.StatusOK)
		var buf bytes.Buffer
		if last := r.Header.Get("Last-Event-ID"); last != "" && !resumed {
			// Say so: the client may have missed events older than the window.
			buf.WriteString("event: gap\ndata: {\"reason\":\"Last-Event-ID is no longer in the window\"}\n\n")
		}
		for _, e := range backlog {
			writeEvent(&buf, e)
		}
		rc := http.NewResponseController(w)
		send := func(b []byte) bool {
			// A client that takes nothing is closed rather than held.
			_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
			if _, err := w.Write(b); err != nil {
				h.droppedStuck()
				return false
			}
			if err := rc.Flush(); err != nil {
				h.droppedStuck()
				return false
			}
			return true
		}
		if !send(buf.Bytes()) {
			return
		}
		beat := time.NewTicker(h.cfg.Heartbeat)
		defer beat.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-h.closing:
				return
			case <-beat.C:
				if !send([]byte(": ping\n\n")) {
					return
				}
			case e, ok := <-c.ch:
				if !ok {
					// Dropped for falling behind: the client reconnects with
					// Last-Event-ID and resumes within the window.
					return
				}
				buf.Reset()
				writeEvent(&buf, e)
				n := 1
				// Whatever else is already waiting goes in the same write.
				for more := len(c.ch); more > 0; more-- {
					e, ok := <-c.ch
					if !ok {
						break
					}
					writeEvent(&buf, e)
					n++
				}
				if !send(buf.Bytes()) {
					return
				}
				if h.metrics != nil {
					h.metrics.Sent.Add(float64(n))
				}
			}
		}
	})
}

// droppedStuck counts a client whose socket refused a write (gone, or
// taking nothing for WriteTimeout).
func (h *Hub) droppedStuck() {
	if h.metrics != nil {
		h.metrics.Dropped.WithLabelValues(DropWriteFailed).Inc()
	}
}

// writeEvent writes e as an SSE event; a payload spanning lines becomes
// several data lines, which the client joins back with newlines.
func writeEvent(buf *bytes.Buffer, e Event) {
	fmt.Fprintf(buf, "id: %s\nevent: %s\n", e.ID, e.Type)
	for _, line := range bytes.Split(e.Data, []byte("\n")) {
		buf.WriteString("data: ")
		buf.Write(bytes.TrimSuffix(line, []byte("\r")))
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}
