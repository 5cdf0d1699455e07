package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
	"github.com/ss3dev/integration-operator/internal/store"
)

// polledOrders counts the order events for one store on the events topic,
// by marketplace order id, as a background reader sees them.
type polledOrders struct {
	mu      sync.Mutex
	count   map[string]int
	eventID map[string]uuid.UUID
	// unstable lists orders published under two event ids.
	unstable []string
}

func (e *env) watchOrders(t *testing.T, storeID string) *polledOrders {
	t.Helper()
	p := &polledOrders{count: map[string]int{}, eventID: map[string]uuid.UUID{}}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.bed.Kafka.Brokers(), GroupID: "test-" + uuid.NewString(), GroupTopics: []string{eventsTopic},
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			ev, err := Decode(m)
			if err != nil || ev.Type != "marketplace.order.received" || ev.StoreID != storeID {
				continue
			}
			var data struct {
				OrderID string `json:"marketplaceOrderId"`
			}
			_ = json.Unmarshal(ev.Data, &data)
			p.mu.Lock()
			p.count[data.OrderID]++
			if id, ok := p.eventID[data.OrderID]; ok && id != ev.ID {
				p.unstable = append(p.unstable, data.OrderID)
			}
			p.eventID[data.OrderID] = ev.ID
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = r.Close()
	})
	return p
}

// missing says how many of ids have not been seen.
func (p *polledOrders) missing(ids []string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, id := range ids {
		if p.count[id] == 0 {
			n++
		}
	}
	return n
}

func addOrders(fake *marketplacetest.Amazon, prefix string, start time.Time, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%07d", prefix, i)
		fake.AddOrder(marketplacetest.AmazonOrder{ID: ids[i], Purchased: start.Add(time.Duration(i) * 10 * time.Second),
			Status: "Unshipped", Amount: "5.00", Currency: "EUR"})
	}
	return ids
}

func TestPollBacklogSurvivesAFailedPageAndCatchesUp(t *testing.T) {
	e := startEnv(t)
	amazon := newAmazon(t)
	amazon.PageSize = 300
	const storeID = "store-backlog"
	start := time.Now().Add(-10 * time.Hour).Truncate(time.Second)
	backlog := addOrders(amazon, "027", start, 3000) // ten pages
	amazon.FailOrdersPage(5, 1)
	configID := e.amazonConnector(t, amazon, storeID, nil, 2*time.Second)
	orders := e.watchOrders(t, storeID)
	cfg := fastConnectors
	cfg.Timeout = 30 * time.Second // room for the whole backlog in a run: only the failure splits it
	e.run(t, Config{Connectors: cfg})

	eventually(t, 90*time.Second, "every backlog order on the events topic", func() error {
		if n := orders.missing(backlog); n > 0 {
			return fmt.Errorf("%d of %d orders not published yet", n, len(backlog))
		}
		return nil
	})
	if amazon.Failed() != 1 {
		t.Fatalf("%d injected failures, want page 5 failed once", amazon.Failed())
	}
	// Pages 1-4 are kept by the run that failed; the next run resumes at page 5.
	var partial, after store.SyncRun
	eventually(t, 10*time.Second, "the run after the failed page finished", func() error {
		runs, err := e.store.SyncRuns(context.Background(), configID, 100)
		if err != nil {
			return err
		}
		for i := len(runs) - 1; i > 0; i-- {
			if runs[i].Status == store.SyncPartial {
				if partial, after = runs[i], runs[i-1]; after.Status == store.SyncRunning {
					return fmt.Errorf("the run after the PARTIAL one is still running")
				}
				return nil
			}
		}
		return fmt.Errorf("no PARTIAL poll run: %+v", runs)
	})
	if partial.RecordCount != 1200 || partial.EntityType != "order" || !strings.Contains(partial.ErrorSummary, "503") {
		t.Errorf("the run that failed on page 5: %+v; want 1200 orders (pages 1-4) and the 503", partial)
	}
	if after.Status != store.SyncSucceeded || after.RecordCount != 1800 {
		t.Errorf("the run after it: %+v; want SUCCEEDED with the 1800 orders of pages 5-10", after)
	}
	calls := amazon.Calls()
	if len(calls) < 10 || calls[0].Query.Get("CreatedAfter") == "" {
		t.Fatalf("%d getOrders calls; want the walk's ten pages, the first by CreatedAfter", len(calls))
	}
	for i, c := range calls[1:10] {
		if c.Query.Get("NextToken") == "" {
			t.Errorf("page %d was fetched with %v, not the saved NextToken: the walk started again", i+2, c.Query)
		}
	}

	// Orders placed after the backlog come in on a later walk.
	laterStart := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	later := addOrders(amazon, "028", laterStart, 50)
	eventually(t, 30*time.Second, "the later orders on the events topic", func() error {
		if n := orders.missing(later); n > 0 {
			return fmt.Errorf("%d of %d later orders not published yet", n, len(later))
		}
		return nil
	})
	// Each order once, but for the newest of each walk, which the next
	// walk's CreatedAfter (inclusive) reads again under the same id.
	orders.mu.Lock()
	for _, id := range append(append([]string{}, backlog...), later...) {
		if n := orders.count[id]; n != 1 && id != backlog[len(backlog)-1] && id != later[len(later)-1] {
			t.Errorf("order %s was published %d times", id, n)
		}
	}
	if len(orders.count) != len(backlog)+len(later) || len(orders.unstable) > 0 {
		t.Errorf("%d distinct orders published, want %d; published under a second event id: %v",
			len(orders.count), len(backlog)+len(later), orders.unstable)
	}
	orders.mu.Unlock()
	// The cursor in Postgres has moved on to the newest order.
	want := laterStart.Add(time.Duration(len(later)-1) * 10 * time.Second)
	eventually(t, 10*time.Second, "the cursor at the newest order", func() error {
		var raw string
		if err := e.store.Pool().QueryRow(context.Background(), `SELECT poll_cursor FROM connector_poll_state WHERE config_id = $1`,
			configID).Scan(&raw); err != nil {
			return err
		}
		var c struct {
			CreatedAfter time.Time `json:"createdAfter"`
			NextToken    string    `json:"nextToken"`
		}
		if err := json.Unmarshal([]byte(raw), &c); err != nil || !c.CreatedAfter.Equal(want) || c.NextToken != "" {
			return fmt.Errorf("cursor %q (%v), want createdAfter %v and no nextToken", raw, err, want)
		}
		return nil
	})
	if p := amazon.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
}
