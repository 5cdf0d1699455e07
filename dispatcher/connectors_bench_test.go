package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/connectors/inbound"
	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
)

// BenchmarkConnectors measures the connector stages with Postgres, Vault
// and kfake local and the marketplaces played by their strict stand-ins:
// inventory updates pushed to eBay (bulk calls of 25), and Stripe webhooks
// received (verified, stored once, published). Run once:
//
//	go test -run '^$' -bench Connectors -benchtime 1x ./dispatcher/
func BenchmarkConnectors(b *testing.B) {
	b.Run("ebay-inventory-updates", func(b *testing.B) { benchEbay(b, 20_000) })
	b.Run("stripe-webhooks", func(b *testing.B) { benchStripe(b, 5_000, 8) })
}

func benchEbay(b *testing.B, events int) {
	e := startEnv(b)
	ebay := marketplacetest.NewEbay("ebay-app", "ebay-cert", "v^1.1#refresh")
	b.Cleanup(ebay.Close)
	id := uuid.New()
	for name, value := range map[string]string{"api-key": "ebay-app", "api-secret": "ebay-cert", "refresh-token": "v^1.1#refresh"} {
		if _, err := e.vault.Put(context.Background(), "connector/"+id.String()+"/"+name, map[string]string{"value": value}); err != nil {
			b.Fatal(err)
		}
	}
	raw, _ := json.Marshal(map[string]string{"endpoint": ebay.URL})
	if _, err := e.store.Pool().Exec(context.Background(), `INSERT INTO connector_configs (config_id, store_id, connector_type, display_name,
		event_subscriptions, settings) VALUES ($1, 'bench-store', 'ebay', 'bench', '{inventory.updated}', $2::jsonb)`, id, string(raw)); err != nil {
		b.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: eventsTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond}
	for from := 0; from < events; from += 5000 {
		var msgs []kafka.Message
		for i := from; i < min(from+5000, events); i++ {
			value, _ := json.Marshal(map[string]any{"eventId": uuid.New(), "eventType": "inventory.updated", "storeId": "bench-store",
				"data": map[string]any{"sku": fmt.Sprint("SKU-", i), "quantity": i % 50}})
			msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: value})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	b.ResetTimer()
	start := time.Now()
	d := e.run(b, Config{Connectors: ConnectorConfig{PollCheck: 20 * time.Millisecond, BatchSize: 100}})
	waitFor(b, "connector events handed to eBay", int64(events), func() int64 {
		var n int64
		_ = e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM connector_deliveries WHERE status = 'DELIVERED'`).Scan(&n)
		return n
	}, d)
	elapsed := time.Since(start)
	b.StopTimer()
	if p := ebay.Problems(); len(p) > 0 {
		b.Fatal(p[0])
	}
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(len(ebay.Calls())), "api-calls")
	b.ReportMetric(0, "ns/op")
}

func benchStripe(b *testing.B, webhooks, callers int) {
	e := startEnv(b)
	const secret = "whsec_bench_endpoint_secret"
	id := uuid.New()
	if _, err := e.vault.Put(context.Background(), "connector/"+id.String()+"/api-secret", map[string]string{"value": secret}); err != nil {
		b.Fatal(err)
	}
	if _, err := e.store.Pool().Exec(context.Background(), `INSERT INTO connector_configs (config_id, store_id, connector_type, display_name)
		VALUES ($1, 'bench-store', 'stripe', 'bench')`, id); err != nil {
		b.Fatal(err)
	}
	d := e.run(b, Config{Connectors: ConnectorConfig{PollCheck: 50 * time.Millisecond}})
	srv := httptest.NewServer(d.InboundHandler())
	b.Cleanup(srv.Close)
	url := srv.URL + "/connectors/" + id.String() + "/webhook"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: callers}}
	var next, failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(webhooks); i = next.Add(1) {
				body := fmt.Sprintf(`{"id":"evt_bench_%d","object":"event","type":"charge.succeeded","created":1763900000,"data":{"object":{"id":"ch_%d"}}}`, i, i)
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Stripe-Signature", inbound.SignStripe([]byte(body), secret, time.Now()))
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d webhooks not accepted", failed.Load())
	}
	stored, published, err := e.store.InboundEventCounts(context.Background(), id)
	if err != nil || stored != int64(webhooks) || published != int64(webhooks) {
		b.Fatalf("stored %d, published %d (%v)", stored, published, err)
	}
	b.ReportMetric(float64(webhooks)/elapsed.Seconds(), "webhooks/s")
	b.ReportMetric(0, "ns/op")
}
