package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
)

// BenchmarkClaimConnectorBacklog claims connector work from a burst of
// 20,000 queued inventory updates (one entity each) just written to a
// partition the planner has no statistics for yet: the shape that took
// 104 s per claim before migration 00022 (the entity-order probe went
// through the per-connector index, filtering the whole backlog per row).
//
//	go test -run '^$' -bench ClaimConnectorBacklog -benchtime 10x ./internal/store/
func BenchmarkClaimConnectorBacklog(b *testing.B) {
	st, ctx := hostileStore(b)
	cfg := activeConnector(b, st, "store-a", "ebay")
	const backlog, batch = 20000, 5000
	for from := 0; from < backlog; from += batch {
		news := make([]store.NewConnectorDelivery, 0, batch)
		for i := from; i < from+batch; i++ {
			news = append(news, store.NewConnectorDelivery{ID: store.NewID(), ConfigID: cfg.ID, EventID: uuid.New(), StoreID: "store-a",
				EventType: "inventory.updated", Payload: fmt.Appendf(nil, `{"sku":"SKU-%d"}`, i), EntityKey: fmt.Sprint("sku:SKU-", i),
				EventTime: time.Now()})
		}
		if err := st.InsertConnectorDeliveries(ctx, news); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		// A fresh claim each time: a lease of a nanosecond has lapsed by the
		// next, so every claim judges the whole backlog again.
		claimed, err := st.ClaimConnectorDeliveries(ctx, 200, time.Nanosecond)
		if err != nil || len(claimed) != 200 {
			b.Fatalf("claimed %d: %v", len(claimed), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/claim")
}
