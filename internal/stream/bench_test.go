package stream_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/stream"
)

// BenchmarkStream1000Clients holds 1,000 concurrent SSE streams on one hub
// over loopback HTTP (10 stores, 100 apps each), publishes events at a
// fixed rate and reports the event-to-client latency (publish to the
// client having read the event) at p50 and p99, and whether any client
// was dropped.
//
//	go test -run '^$' -bench Stream -benchtime 1x ./internal/stream/
func BenchmarkStream1000Clients(b *testing.B) {
	const (
		stores   = 10
		perStore = 100
		rate     = 200 // events/s over all stores: 20,000 client deliveries/s
		duration = 5 * time.Second
	)
	hub := stream.New(stream.Config{PerCredential: 1})
	keysByToken := map[string]stream.Principal{}
	for s := range stores {
		for c := range perStore {
			keysByToken[fmt.Sprintf("k-%d-%d", s, c)] = stream.Principal{CredentialID: fmt.Sprintf("c-%d-%d", s, c),
				StoreID: fmt.Sprint("store-", s), Scopes: []string{"orders:read"}}
		}
	}
	srv := newServer(b, hub.Handler(func(r *http.Request) (stream.Principal, int) {
		p, ok := keysByToken[r.Header.Get("X-Key")]
		if !ok {
			return p, http.StatusUnauthorized
		}
		return p, http.StatusOK
	}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1, DisableCompression: true}}

	var mu sync.Mutex
	var latencies []time.Duration
	var ready, done sync.WaitGroup
	for token := range keysByToken {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			req, _ := http.NewRequest(http.MethodGet, srv, nil)
			req.Header.Set("X-Key", token)
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("connect: %v", err)
				ready.Done()
				return
			}
			defer resp.Body.Close()
			ready.Done()
			mine := make([]time.Duration, 0, rate*int(duration/time.Second)/stores+10)
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			for {
				line, err := r.ReadSlice('\n')
				if err != nil {
					break
				}
				if v, ok := bytes.CutPrefix(line, []byte(`data: {"publishedAt":`)); ok {
					ns, _ := strconv.ParseInt(string(bytes.TrimRight(v, "}\n")), 10, 64)
					if ns == 0 {
						break // the closing event
					}
					mine = append(mine, time.Since(time.Unix(0, ns)))
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		}()
	}
	ready.Wait()
	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	end := time.Now().Add(duration)
	sent := 0
	for now := range tick.C {
		if now.After(end) {
			break
		}
		hub.Publish(stream.Event{ID: uuid.NewString(), StoreID: fmt.Sprint("store-", sent%stores), Type: "order.placed",
			Data: []byte(fmt.Sprintf(`{"publishedAt":%d}`, time.Now().UnixNano()))})
		sent++
	}
	tick.Stop()
	for s := range stores {
		hub.Publish(stream.Event{ID: uuid.NewString(), StoreID: fmt.Sprint("store-", s), Type: "order.placed", Data: []byte(`{"publishedAt":0}`)})
	}
	done.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	if want := sent * perStore; len(latencies) != want {
		b.Errorf("%d events reached clients, want %d (%d dropped)", len(latencies), want, hub.Dropped())
	}
	if len(latencies) == 0 {
		return
	}
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(keysByToken)), "clients")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(hub.Dropped()), "dropped")
	b.ReportMetric(0, "ns/op")
}

func newServer(b *testing.B, h http.Handler) string {
	srv := &http.Server{Handler: h}
	ln, err := listen()
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
