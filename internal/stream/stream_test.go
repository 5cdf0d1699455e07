package stream_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ss3dev/integration-operator/internal/stream"
)

// keys are the test's credentials: bearer token -> principal.
var keys = map[string]stream.Principal{
	"key-a-orders":    {CredentialID: "cred-a", StoreID: "store-a", Scopes: []string{"orders:read", "inventory:read"}},
	"key-a-inventory": {CredentialID: "cred-a-inv", StoreID: "store-a", Scopes: []string{"inventory:read", "inventory:write"}},
	"key-b":           {CredentialID: "cred-b", StoreID: "store-b", Scopes: []string{"orders:read"}},
	"key-none":        {CredentialID: "cred-n", StoreID: "store-a", Scopes: []string{"webhooks:manage"}},
}

func auth(r *http.Request) (stream.Principal, int) {
	p, ok := keys[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if !ok {
		return p, http.StatusUnauthorized
	}
	return p, http.StatusOK
}

func serve(t testing.TB, cfg stream.Config) (*stream.Hub, *httptest.Server) {
	hub := stream.New(cfg)
	srv := httptest.NewServer(hub.Handler(auth))
	t.Cleanup(srv.Close)
	return hub, srv
}

type sse struct {
	id, event, data string
}

// client is an SSE client: it reads events into a channel.
type client struct {
	resp   *http.Response
	events chan sse
}

func connect(t testing.TB, url, key, lastID string) (*client, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, resp.StatusCode
	}
	c := &client{resp: resp, events: make(chan sse, 10000)}
	go func() {
		defer close(c.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if cur.event != "" {
					c.events <- cur
				}
				cur = sse{}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				if cur.data != "" {
					cur.data += "\n"
				}
				cur.data += line[6:]
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return c, http.StatusOK
}

func (c *client) next(t testing.TB) sse {
	t.Helper()
	select {
	case e, ok := <-c.events:
		if !ok {
			t.Fatal("stream ended")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sse{}
}

func event(storeID, typ string) stream.Event {
	id := uuid.NewString()
	return stream.Event{ID: id, StoreID: storeID, Type: typ, Data: []byte(fmt.Sprintf(`{"id":%q}`, id))}
}

func TestOwnStoreOnlyAndScopesFilterTypes(t *testing.T) {
	hub, srv := serve(t, stream.Config{})
	a, _ := connect(t, srv.URL, "key-a-orders", "")
	inv, _ := connect(t, srv.URL, "key-a-inventory", "")
	b, _ := connect(t, srv.URL, "key-b", "")
	if _, status := connect(t, srv.URL, "key-none", ""); status != http.StatusForbidden {
		t.Errorf("a key with no read scope: %d, want 403", status)
	}
	if _, status := connect(t, srv.URL, "wrong", ""); status != http.StatusUnauthorized {
		t.Errorf("an unknown key: %d, want 401", status)
	}
	orderB := event("store-b", "order.placed")
	orderA := event("store-a", "order.placed")
	invA := event("store-a", "inventory.updated")
	multiline := stream.Event{ID: uuid.NewString(), StoreID: "store-a", Type: "order.updated", Data: []byte("{\n  \"pretty\": true\n}")}
	for _, e := range []stream.Event{orderB, orderA, invA, multiline} {
		hub.Publish(e)
	}
	if got := a.next(t); got.id != orderA.ID || got.event != "order.placed" || got.data != string(orderA.Data) {
		t.Errorf("store-a's orders key got %+v first, want its own order", got)
	}
	if got := a.next(t); got.id != invA.ID {
		t.Errorf("then %+v, want the inventory event", got)
	}
	if got := a.next(t); got.data != string(multiline.Data) {
		t.Errorf("a payload on several lines came back as %q", got.data)
	}
	// The inventory-only key sees the inventory event and no order event.
	if got := inv.next(t); got.id != invA.ID {
		t.Errorf("inventory key got %+v, want only the inventory event", got)
	}
	if got := b.next(t); got.id != orderB.ID {
		t.Errorf("store-b got %+v", got)
	}
	// Nothing else is waiting for either: a marker arrives next.
	markerA, markerB := event("store-a", "inventory.updated"), event("store-b", "order.placed")
	hub.Publish(markerA)
	hub.Publish(markerB)
	if got := inv.next(t); got.id != markerA.ID {
		t.Errorf("inventory key got an event it may not see: %+v", got)
	}
	if got := b.next(t); got.id != markerB.ID {
		t.Errorf("store-b got another store's event: %+v", got)
	}
}

func TestReconnectWithLastEventIDMissesNothingInTheWindow(t *testing.T) {
	hub, srv := serve(t, stream.Config{Window: 100})
	c, _ := connect(t, srv.URL, "key-b", "")
	first := event("store-b", "order.placed")
	hub.Publish(first)
	if got := c.next(t); got.id != first.ID {
		t.Fatalf("got %+v", got)
	}
	c.resp.Body.Close()
	var missed []string
	for range 20 {
		e := event("store-b", "order.placed")
		missed = append(missed, e.ID)
		hub.Publish(e)
	}
	again, _ := connect(t, srv.URL, "key-b", first.ID)
	for _, id := range missed {
		if got := again.next(t); got.id != id {
			t.Fatalf("resumed stream gave %s, want %s", got.id, id)
		}
	}
	live := event("store-b", "order.placed")
	hub.Publish(live)
	if got := again.next(t); got.id != live.ID {
		t.Errorf("after the backlog got %s, want the live event", got.id)
	}

	// An id older than the window: said so, then what the window holds.
	for range 150 {
		hub.Publish(event("store-b", "order.placed"))
	}
	old, _ := connect(t, srv.URL, "key-b", first.ID)
	if got := old.next(t); got.event != "gap" {
		t.Errorf("an id outside the window should get a gap event first, got %+v", got)
	}
}

func TestSlowClientIsDroppedAndOthersKeepUp(t *testing.T) {
	hub, srv := serve(t, stream.Config{ClientBuffer: 8})
	// The slow client: connected, never read. The socket buffers fill and
	// its queue overflows.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer key-a-orders")
	slow, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	fast, _ := connect(t, srv.URL, "key-a-inventory", "")
	// Each event waits for the reading client only; the one that does not
	// read falls behind by more than the socket buffers and its queue.
	payload := strings.Repeat("x", 64<<10)
	for range 400 {
		e := event("store-a", "inventory.updated")
		e.Data = []byte(`{"pad":"` + payload + `"}`)
		hub.Publish(e)
		if got := fast.next(t); got.id != e.ID {
			t.Fatalf("the reading client got %s, want %s", got.id, e.ID)
		}
	}
	if hub.Dropped() != 1 {
		t.Errorf("dropped %d clients, want the slow one", hub.Dropped())
	}
}

func TestConnectionsPerCredentialAreLimited(t *testing.T) {
	_, srv := serve(t, stream.Config{PerCredential: 2})
	for range 2 {
		if _, status := connect(t, srv.URL, "key-b", ""); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	if _, status := connect(t, srv.URL, "key-b", ""); status != http.StatusTooManyRequests {
		t.Errorf("a third stream: %d, want 429", status)
	}
	if _, status := connect(t, srv.URL, "key-a-orders", ""); status != http.StatusOK {
		t.Errorf("another credential: %d, want 200", status)
	}
}

func TestStreamsPerReplicaAreLimited(t *testing.T) {
	_, srv := serve(t, stream.Config{MaxClients: 2})
	for _, key := range []string{"key-a-orders", "key-b"} {
		if _, status := connect(t, srv.URL, key, ""); status != http.StatusOK {
			t.Fatalf("status %d", status)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer key-a-inventory")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a third stream on a full replica: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// metered serves a hub whose metrics the test reads.
func metered(t *testing.T, cfg stream.Config) (*stream.Hub, *httptest.Server, *stream.Metrics) {
	m, err := stream.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Metrics = m
	hub, srv := serve(t, cfg)
	return hub, srv, m
}

func TestAClientThatTakesNothingIsClosedAfterTheWriteTimeout(t *testing.T) {
	// A buffer too large to overflow: only the write timeout can free it.
	hub, srv, m := metered(t, stream.Config{ClientBuffer: 100000, WriteTimeout: 300 * time.Millisecond})
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Bearer key-a-orders")
	stuck, err := http.DefaultClient.Do(req) // connected, never read
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Body.Close()
	payload := strings.Repeat("x", 64<<10)
	for range 1000 { // 64 MB: more than any socket buffers
		e := event("store-a", "order.placed")
		e.Data = []byte(`{"pad":"` + payload + `"}`)
		hub.Publish(e)
	}
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(m.Dropped.WithLabelValues(stream.DropWriteFailed)) != 1 || testutil.ToFloat64(m.Clients) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck client is still held: %v streams open, %v dropped for a failed write",
				testutil.ToFloat64(m.Clients), testutil.ToFloat64(m.Dropped.WithLabelValues(stream.DropWriteFailed)))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Its credential may stream again.
	if c, status := connect(t, srv.URL, "key-a-orders", ""); status != http.StatusOK || c == nil {
		t.Errorf("reconnecting after the drop: %d", status)
	}
}

func TestTheWindowStaysWithinItsBytesAndAge(t *testing.T) {
	const budget = 1 << 20
	hub, srv, m := metered(t, stream.Config{WindowBytes: budget, WindowAge: time.Minute})
	// An old event, then a flood over many store ids.
	old := event("store-b", "order.placed")
	old.At = time.Now().Add(-2 * time.Minute)
	hub.Publish(old)
	payload := strings.Repeat("y", 1000)
	for i := range 20000 {
		e := event(fmt.Sprint("flood-", i), "order.placed")
		e.Data = []byte(`{"pad":"` + payload + `"}`)
		hub.Publish(e)
	}
	if got := testutil.ToFloat64(m.WindowBytes); got > budget || got < budget/2 {
		t.Errorf("the window holds %v bytes, want at most (and near) %d", got, budget)
	}
	// The old event aged out: resuming from it says there may be a gap.
	c, status := connect(t, srv.URL, "key-b", old.ID)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if got := c.next(t); got.event != "gap" {
		t.Errorf("resuming from an event older than the window: %+v, want a gap event", got)
	}
	// What is still in the window is resumed from as before.
	recent := event("store-b", "order.placed")
	hub.Publish(recent)
	after := event("store-b", "order.placed")
	hub.Publish(after)
	c2, _ := connect(t, srv.URL, "key-b", recent.ID)
	if got := c2.next(t); got.id != after.ID {
		t.Errorf("resumed with %+v, want the event after %s", got, recent.ID)
	}
}
