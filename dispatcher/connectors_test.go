package dispatcher

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/inbound"
	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
	"github.com/ss3dev/integration-operator/internal/store"
)

// fastConnectors makes the connector stages quick enough for tests.
var fastConnectors = ConnectorConfig{PollCheck: 50 * time.Millisecond, Timeout: 2 * time.Second,
	RetrySchedule: []time.Duration{0, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}}

// connector stores an active connector and its credentials, as the manager would.
func (e *env) connector(t *testing.T, typ, storeID string, events []string, settings map[string]any, creds map[string]string, poll time.Duration) uuid.UUID {
	t.Helper()
	id := uuid.New()
	raw, _ := json.Marshal(settings)
	for name, value := range creds {
		if _, err := e.vault.Put(context.Background(), "connector/"+id.String()+"/"+name, map[string]string{"value": value}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.UpsertConnectorConfig(context.Background(), store.ConnectorConfig{ID: id, StoreID: storeID, ConnectorType: typ,
		DisplayName: typ, IsActive: true, EventSubscriptions: events, Settings: raw, PollInterval: poll}); err != nil {
		t.Fatal(err)
	}
	return id
}

// ebayConnector stores an active eBay connector for storeID's events,
// against a stand-in for eBay that it returns.
func (e *env) ebayConnector(t *testing.T, storeID string, events []string) (*marketplacetest.Ebay, uuid.UUID) {
	fake := marketplacetest.NewEbay("ebay-app", "ebay-cert", "v^1.1#refresh")
	t.Cleanup(fake.Close)
	return fake, e.connector(t, "ebay", storeID, events, map[string]any{"endpoint": fake.URL},
		map[string]string{"api-key": "ebay-app", "api-secret": "ebay-cert", "refresh-token": "v^1.1#refresh"}, time.Hour)
}

func newAmazon(t *testing.T) *marketplacetest.Amazon {
	fake := marketplacetest.NewAmazon("lwa-client", "lwa-secret", "Atzr|refresh", "A1SELLER", "ATVPDKIKX0DER")
	t.Cleanup(fake.Close)
	return fake
}

func (e *env) amazonConnector(t *testing.T, fake *marketplacetest.Amazon, storeID string, events []string, poll time.Duration) uuid.UUID {
	return e.connector(t, "amazon", storeID, events,
		map[string]any{"sellerId": fake.SellerID, "marketplaceId": fake.MarketplaceID, "endpoint": fake.URL, "lwaEndpoint": fake.URL},
		map[string]string{"api-key": fake.ClientID, "api-secret": fake.ClientSecret, "refresh-token": fake.RefreshToken}, poll)
}

func apiCalls(calls []marketplacetest.Call, method, pathPrefix string) int {
	n := 0
	for _, c := range calls {
		if c.Method == method && strings.HasPrefix(c.Path, pathPrefix) {
			n++
		}
	}
	return n
}

func TestEventsReachTheirMarketplaceAdapters(t *testing.T) {
	e := startEnv(t)
	amazon := newAmazon(t)
	ebay := marketplacetest.NewEbay("ebay-app", "ebay-cert", "v^1.1#refresh")
	t.Cleanup(ebay.Close)
	amazonID := e.amazonConnector(t, amazon, "store-9", []string{"product.updated", "inventory.updated", "order.fulfilled"}, time.Hour)
	ebayID := e.connector(t, "ebay", "store-9", []string{"product.*", "inventory.updated"}, map[string]any{"endpoint": ebay.URL},
		map[string]string{"api-key": "ebay-app", "api-secret": "ebay-cert", "refresh-token": "v^1.1#refresh"}, time.Hour)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	google := marketplacetest.NewGoogle("sync@shop.iam.gserviceaccount.com", "", &key.PublicKey, "4242", "77")
	t.Cleanup(google.Close)
	e.connector(t, "google-shopping", "store-9", []string{"product.updated"},
		map[string]any{"accountId": "4242", "dataSourceId": "77", "endpoint": google.URL, "authEndpoint": google.URL},
		map[string]string{"api-key": "sync@shop.iam.gserviceaccount.com", "api-secret": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))}, time.Hour)
	// Another store's connector gets nothing.
	e.connector(t, "ebay", "store-10", []string{"product.updated"}, map[string]any{"endpoint": ebay.URL},
		map[string]string{"api-key": "ebay-app", "api-secret": "ebay-cert", "refresh-token": "v^1.1#refresh"}, time.Hour)
	e.run(t, Config{Connectors: fastConnectors})

	product, productID := envelopeMessage(t, "store-9", "product.updated", map[string]any{"sku": "MUG-1", "title": "Mug", "quantity": 5,
		"price": map[string]string{"amount": "12.50", "currency": "GBP"}})
	stock, _ := envelopeMessage(t, "store-9", "inventory.updated", map[string]any{"sku": "MUG-1", "quantity": 4})
	shipped, _ := envelopeMessage(t, "store-9", "order.fulfilled", map[string]any{"marketplaceOrderId": "206-1-1", "carrier": "Royal Mail",
		"trackingNumber": "RM1", "items": []map[string]any{{"marketplaceItemId": "OI-1", "quantity": 1}}})
	other, _ := envelopeMessage(t, "store-9", "customer.created", map[string]any{"id": "c1"})
	e.produce(t, product, stock, shipped, other)

	eventually(t, 20*time.Second, "each marketplace got its calls", func() error {
		a, b := amazon.Calls(), ebay.Calls()
		if apiCalls(a, "PUT", "/listings/") != 1 || apiCalls(a, "PATCH", "/listings/") != 1 || apiCalls(a, "POST", "/orders/v0/orders/206-1-1/shipmentConfirmation") != 1 {
			return fmt.Errorf("amazon calls: %d", len(a))
		}
		if apiCalls(b, "PUT", "/sell/inventory/v1/inventory_item/MUG-1") != 1 || apiCalls(b, "POST", "/sell/inventory/v1/bulk_update_price_quantity") != 1 {
			return fmt.Errorf("ebay calls: %d", len(b))
		}
		// The product lacks a link, so Google gets a patch of what it has.
		if g := google.Calls(); len(g) != 1 || g[0].Method != "PATCH" || g[0].Path != "/products/v1/accounts/4242/productInputs/en~US~MUG-1" {
			return fmt.Errorf("google calls: %+v", g)
		}
		return nil
	})
	if p := append(append(amazon.Problems(), ebay.Problems()...), google.Problems()...); len(p) > 0 {
		t.Fatalf("the stand-ins refused requests: %v", p)
	}
	// eBay has no offer for the SKU yet, so no price update; Amazon shipped nothing to other stores.
	if n := len(ebay.Calls()); n != 3 {
		t.Errorf("ebay got %d calls, want 3 (item, offer lookup, bulk quantity)", n)
	}
	eventually(t, 10*time.Second, "outcomes recorded", func() error {
		status, attempts, _, err := e.store.ConnectorDeliveryStatus(context.Background(), amazonID, productID)
		if err != nil || status != store.DeliveryDelivered || attempts != 1 {
			return fmt.Errorf("amazon product delivery: %s %d %v", status, attempts, err)
		}
		runs, err := e.store.SyncRuns(context.Background(), ebayID, 10)
		if err != nil {
			return err
		}
		done := 0
		for _, r := range runs {
			if r.Direction == store.SyncOutbound && r.Status == store.SyncSucceeded {
				done += r.RecordCount
			}
		}
		if done != 2 {
			return fmt.Errorf("ebay sync log counts %d records, want 2: %+v", done, runs)
		}
		return nil
	})
}

func TestFailingMarketplaceDoesNotDelayWebhooks(t *testing.T) {
	e := startEnv(t)
	amazon := newAmazon(t)
	amazon.SetUnavailable(true)
	amazon.SetDelay(time.Second)
	configID := e.amazonConnector(t, amazon, "store-11", []string{"inventory.updated"}, time.Hour)
	rcv := newReceiver(t)
	e.subscribe(t, "store-11", rcv.URL, []string{"inventory.*"}, nil)
	cc := fastConnectors
	cc.Workers = 1
	e.run(t, Config{Connectors: cc})

	var msgs []kafka.Message
	var ids []uuid.UUID
	for i := range 50 {
		m, id := envelopeMessage(t, "store-11", "inventory.updated", map[string]any{"sku": fmt.Sprintf("SKU-%d", i), "quantity": i})
		msgs, ids = append(msgs, m), append(ids, id)
	}
	e.produce(t, msgs...)
	eventually(t, 20*time.Second, "all webhooks delivered", func() error {
		if n := len(rcv.requests()); n != 50 {
			return fmt.Errorf("%d of 50", n)
		}
		return nil
	})
	// The marketplace is still failing: none of its events got through, yet every webhook did.
	delivered := 0
	for _, id := range ids {
		if status, _, _, _ := e.store.ConnectorDeliveryStatus(context.Background(), configID, id); status == store.DeliveryDelivered {
			delivered++
		}
	}
	if delivered != 0 {
		t.Fatalf("%d connector deliveries succeeded against an unavailable marketplace", delivered)
	}
	eventually(t, 20*time.Second, "a FAILED sync run recorded", func() error {
		runs, _ := e.store.SyncRuns(context.Background(), configID, 1)
		if len(runs) == 0 || runs[0].Status != store.SyncFailed || !strings.Contains(runs[0].ErrorSummary, "503") {
			return fmt.Errorf("runs: %+v", runs)
		}
		return nil
	})

	// The marketplace recovers: the retries get everything through.
	amazon.SetUnavailable(false)
	amazon.SetDelay(0)
	eventually(t, 30*time.Second, "every connector delivery made after recovery", func() error {
		for _, id := range ids {
			status, attempts, lastErr, err := e.store.ConnectorDeliveryStatus(context.Background(), configID, id)
			if err != nil || status != store.DeliveryDelivered {
				return fmt.Errorf("%s: %s after %d attempts (%s) %v", id, status, attempts, lastErr, err)
			}
		}
		return nil
	})
	if p := amazon.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	health, err := e.store.ConnectorHealths(context.Background())
	if h := health[configID]; err != nil || h.Delivered != 50 || h.FailedAttempts < 1 || h.DeadLettered != 0 || h.Pending != 0 {
		t.Errorf("connector counts: %+v %v", h, err)
	}
}

func TestPollPublishesOrdersOneReplicaAtATime(t *testing.T) {
	e := startEnv(t)
	amazon := newAmazon(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, id := range []string{"026-1", "026-2", "026-3"} {
		amazon.AddOrder(marketplacetest.AmazonOrder{ID: id, Purchased: base.Add(time.Duration(i) * time.Minute), Status: "Unshipped", Amount: "20.00", Currency: "GBP"})
	}
	configID := e.amazonConnector(t, amazon, "store-12", nil, time.Second)
	// The polled orders are platform events: a subscriber gets each once.
	rcv := newReceiver(t)
	e.subscribe(t, "store-12", rcv.URL, []string{"marketplace.*"}, nil)
	e.run(t, Config{Connectors: fastConnectors})
	e.run(t, Config{Connectors: fastConnectors})

	eventually(t, 30*time.Second, "three successful poll runs", func() error {
		runs, err := e.store.SyncRuns(context.Background(), configID, 100)
		if err != nil {
			return err
		}
		ok := 0
		for _, r := range runs {
			if r.Status == store.SyncSucceeded {
				ok++
			}
		}
		if ok < 3 {
			return fmt.Errorf("%d successful runs: %+v", ok, runs)
		}
		return nil
	})
	runs, _ := e.store.SyncRuns(context.Background(), configID, 100)
	first := runs[len(runs)-1]
	if first.Direction != store.SyncInbound || first.EntityType != "order" || first.RecordCount != 3 {
		t.Errorf("first poll run: %+v", first)
	}
	// Two replicas, one poller at a time: no two runs overlap.
	for i := 0; i+1 < len(runs); i++ {
		newer, older := runs[i], runs[i+1]
		if newer.StartedAt.Before(older.FinishedAt) {
			t.Errorf("runs overlap: %v-%v and %v-%v", older.StartedAt, older.FinishedAt, newer.StartedAt, newer.FinishedAt)
		}
	}
	orders := 0
	for _, m := range e.readTopic(t, eventsTopic, 3) {
		if ev, err := Decode(m); err == nil && ev.Type == "marketplace.order.received" && ev.StoreID == "store-12" {
			orders++
		}
	}
	if orders != 3 {
		t.Errorf("%d order events on %s, want 3", orders, eventsTopic)
	}
	eventually(t, 10*time.Second, "the subscriber got the three orders", func() error {
		if n := len(rcv.requests()); n != 3 {
			return fmt.Errorf("%d webhooks", n)
		}
		return nil
	})
	// Later polls re-read the newest order (the cursor is inclusive); its event id is the same, so nobody gets it twice.
	time.Sleep(1500 * time.Millisecond)
	if n := len(rcv.requests()); n != 3 {
		t.Errorf("re-polling delivered %d webhooks, want still 3", n)
	}
	if p := amazon.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
}

// failProduce makes the broker refuse produce requests while fail is set.
func failProduce(e *env, fail *atomic.Bool) {
	c := e.bed.Kafka.Cluster()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !fail.Load() {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, t := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, kerr.NotEnoughReplicas.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
}

func post(t *testing.T, url, contentType string, header http.Header, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStripeWebhooksAreVerifiedStoredOnceAndPublished(t *testing.T) {
	e := startEnv(t)
	const secret = "whsec_stripe_endpoint_secret"
	configID := e.connector(t, "stripe", "store-13", nil, nil, map[string]string{"api-secret": secret}, 0)
	d := e.run(t, Config{Connectors: fastConnectors})
	srv := httptest.NewServer(d.InboundHandler())
	t.Cleanup(srv.Close)
	endpoint := srv.URL + "/connectors/" + configID.String() + "/webhook"
	body := []byte(`{"id":"evt_1Q2w3E","object":"event","type":"payment_intent.succeeded","created":1763900000,"livemode":false,` +
		`"data":{"object":{"id":"pi_1","object":"payment_intent","amount":2000,"currency":"gbp"}}}`)
	signed := func(b []byte, at time.Time, key string) http.Header {
		return http.Header{"Stripe-Signature": {inbound.SignStripe(b, key, at)}}
	}

	if code, answer := post(t, endpoint, "application/json", signed(body, time.Now(), secret), body); code != 200 {
		t.Fatalf("a genuine webhook: %d %s", code, answer)
	}
	if code, answer := post(t, endpoint, "application/json", signed(body, time.Now(), secret), body); code != 200 || !strings.Contains(answer, `"duplicate":true`) {
		t.Fatalf("a replay: %d %s", code, answer)
	}
	for name, h := range map[string]http.Header{
		"wrong secret": signed(body, time.Now(), "whsec_someone_else"),
		"too old":      signed(body, time.Now().Add(-10*time.Minute), secret),
		"no header":    {},
	} {
		if code, _ := post(t, endpoint, "application/json", h, body); code != http.StatusBadRequest {
			t.Errorf("%s: answered %d, want 400", name, code)
		}
	}
	tampered := bytes.Replace(body, []byte("2000"), []byte("9000"), 1)
	if code, _ := post(t, endpoint, "application/json", signed(body, time.Now(), secret), tampered); code != http.StatusBadRequest {
		t.Errorf("a tampered body: answered %d, want 400", code)
	}
	if code, _ := post(t, srv.URL+"/connectors/"+uuid.NewString()+"/webhook", "application/json", signed(body, time.Now(), secret), body); code != http.StatusNotFound {
		t.Errorf("an unknown connector: answered %d, want 404", code)
	}

	stored, published, err := e.store.InboundEventCounts(context.Background(), configID)
	if err != nil || stored != 1 || published != 1 {
		t.Fatalf("stored %d, published %d (%v); want one of each", stored, published, err)
	}
	health, err := e.store.ConnectorHealths(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h := health[configID]; h.InboundAccepted != 1 || h.InboundDuplicates != 1 || h.InboundRejected != 4 || h.LastRejectReason == "" {
		t.Errorf("counts: %+v", h)
	}
	m := e.readTopic(t, eventsTopic, 1)[0]
	ev, err := Decode(m)
	if err != nil || ev.Type != "stripe.payment_intent.succeeded" || ev.StoreID != "store-13" || !bytes.Contains(ev.Data, []byte("pi_1")) {
		t.Fatalf("published: %+v %v", ev, err)
	}

	// Kafka refuses for a while: the webhook is still accepted (it is stored) and published once Kafka is back.
	var failing atomic.Bool
	failing.Store(true)
	failProduce(e, &failing)
	second := bytes.Replace(body, []byte("evt_1Q2w3E"), []byte("evt_2R3t4Y"), 1)
	if code, answer := post(t, endpoint, "application/json", signed(second, time.Now(), secret), second); code != 200 {
		t.Fatalf("with Kafka down: %d %s", code, answer)
	}
	if _, published, _ := e.store.InboundEventCounts(context.Background(), configID); published != 1 {
		t.Fatalf("published %d with Kafka refusing", published)
	}
	failing.Store(false)
	eventually(t, 30*time.Second, "the relay publishes the stored event", func() error {
		if stored, published, err := e.store.InboundEventCounts(context.Background(), configID); err != nil || stored != 2 || published != 2 {
			return fmt.Errorf("stored %d, published %d, %v", stored, published, err)
		}
		return nil
	})
}

func TestPayFastNotificationsAreCheckedFourWays(t *testing.T) {
	e := startEnv(t)
	const passphrase, merchant = "jt7NOE43FZPn", "10000100"
	var confirmations atomic.Int32
	payfast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		values, err := url.ParseQuery(string(body))
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/eng/query/validate" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded":
			http.Error(w, "bad request", http.StatusBadRequest)
		case err != nil || values.Get("signature") != "" || values.Get("pf_payment_id") == "":
			_, _ = w.Write([]byte("INVALID"))
		case values.Get("pf_payment_id") == "forged":
			_, _ = w.Write([]byte("INVALID"))
		default:
			confirmations.Add(1)
			_, _ = w.Write([]byte("VALID"))
		}
	}))
	t.Cleanup(payfast.Close)
	configID := e.connector(t, "payfast", "store-14", nil, map[string]any{"endpoint": payfast.URL, "allowedSourceNetworks": []string{"127.0.0.0/8"}},
		map[string]string{"api-key": merchant, "api-secret": passphrase}, 0)
	d := e.run(t, Config{Connectors: fastConnectors})
	srv := httptest.NewServer(d.InboundHandler())
	t.Cleanup(srv.Close)
	endpoint := srv.URL + "/connectors/" + configID.String() + "/webhook"

	itn := func(paymentID, merchantID, key string) []byte {
		fields := []inbound.Field{{Name: "m_payment_id", Value: "order-77"}, {Name: "pf_payment_id", Value: paymentID},
			{Name: "payment_status", Value: "COMPLETE"}, {Name: "item_name", Value: "Mug & Plate"}, {Name: "amount_gross", Value: "250.00"},
			{Name: "amount_fee", Value: "-5.75"}, {Name: "amount_net", Value: "244.25"}, {Name: "name_first", Value: "Thandi"},
			{Name: "email_address", Value: "thandi@example.com"}, {Name: "merchant_id", Value: merchantID}}
		fields = append(fields, inbound.Field{Name: "signature", Value: inbound.SignPayFast(fields, key)})
		return []byte(inbound.PayFastParamString(fields) + "&signature=" + fields[len(fields)-1].Value)
	}
	const form = "application/x-www-form-urlencoded"
	if code, answer := post(t, endpoint, form, nil, itn("1089250", merchant, passphrase)); code != 200 {
		t.Fatalf("a genuine ITN: %d %s", code, answer)
	}
	if code, answer := post(t, endpoint, form, nil, itn("1089250", merchant, passphrase)); code != 200 || !strings.Contains(answer, "duplicate") {
		t.Fatalf("a replay: %d %s", code, answer)
	}
	for name, body := range map[string][]byte{
		"wrong passphrase":   itn("1089251", merchant, "guess"),
		"another merchant":   itn("1089252", "10000999", passphrase),
		"PayFast disowns it": itn("forged", merchant, passphrase),
	} {
		if code, answer := post(t, endpoint, form, nil, body); code != http.StatusBadRequest {
			t.Errorf("%s: answered %d %s, want 400", name, code, answer)
		}
	}
	if n := confirmations.Load(); n != 2 {
		t.Errorf("PayFast confirmed %d ITNs, want 2 (the genuine one and its replay; forgeries are stopped before asking)", n)
	}
	stored, published, err := e.store.InboundEventCounts(context.Background(), configID)
	if err != nil || stored != 1 || published != 1 {
		t.Fatalf("stored %d, published %d (%v)", stored, published, err)
	}
	ev, err := Decode(e.readTopic(t, eventsTopic, 1)[0])
	var data map[string]any
	_ = json.Unmarshal(ev.Data, &data)
	if err != nil || ev.Type != "payfast.payment.complete" || data["paymentId"] != "1089250" || data["amountGross"] != "250.00" {
		t.Fatalf("published: %+v %v", ev, err)
	}
	if _, ok := data["fields"].(map[string]any)["signature"]; ok {
		t.Error("the published event carries the signature")
	}
}

func TestJudgingAndSummarisingConnectorBatches(t *testing.T) {
	d := &Dispatcher{cfg: Config{OutageRetry: 10 * time.Second, Connectors: ConnectorConfig{RetrySchedule: []time.Duration{0, time.Minute, time.Hour}}}}
	config := uuid.New()
	del := func(typ string, attempts int) store.ConnectorDelivery {
		return store.ConnectorDelivery{ID: uuid.New(), ConfigID: config, EventType: typ, Attempts: attempts}
	}
	batch := []store.ConnectorDelivery{del("product.updated", 0), del("product.updated", 0), del("product.updated", 2),
		del("inventory.updated", 0), del("inventory.updated", 1), del("order.fulfilled", 0)}
	unavailable := &connectors.StatusError{Method: "PUT", Path: "/items/A", Status: 503, Body: "busy"}
	errs := []error{nil, fmt.Errorf("item A: %w", unavailable), fmt.Errorf("PUT answered 503"),
		connectors.Permanent(fmt.Errorf("payload has no sku")), connectors.Deferred(fmt.Errorf("waits for its rate")), nil}
	outcomes := make([]store.ConnectorOutcome, len(batch))
	call := store.Attempt{StartedAt: time.Now(), Duration: time.Second, Replica: "dispatcher-2"}
	for i := range batch {
		outcomes[i] = d.judgeConnector(batch[i], errs[i], call)
	}
	// Each call is an attempt, with the marketplace's answer where the
	// error carries one; the held-back event was not sent: no attempt.
	for i, o := range outcomes {
		switch a := o.Attempt; {
		case i == 4:
			if a != nil {
				t.Errorf("the held-back event has an attempt: %+v", a)
			}
		case a == nil || a.Attempt != call:
			t.Errorf("event %d: attempt %+v, want the call's", i, a)
		case i == 1 && (a.HTTPStatus == nil || *a.HTTPStatus != 503 || a.Answer == nil || *a.Answer != "busy"):
			t.Errorf("event 1: status %v, answer %v; want the wrapped 503's", a.HTTPStatus, a.Answer)
		case i != 1 && (a.HTTPStatus != nil || a.Answer != nil):
			t.Errorf("event %d: status %v, answer %v; want none", i, a.HTTPStatus, a.Answer)
		}
	}
	want := []struct {
		status   string
		attempts int
		retry    *time.Duration
	}{
		{store.DeliveryDelivered, 1, nil},
		{store.DeliveryFailed, 1, ptr(time.Minute)},
		{store.DeliveryDeadLettered, 3, nil}, // the schedule's last attempt
		{store.DeliveryDeadLettered, 1, nil}, // permanent: at once
		{store.DeliveryFailed, 1, ptr(10 * time.Second)},
		{store.DeliveryDelivered, 1, nil},
	}
	for i, w := range want {
		o := outcomes[i]
		if o.Status != w.status || o.Attempts != w.attempts || (o.RetryIn == nil) != (w.retry == nil) || (w.retry != nil && *o.RetryIn != *w.retry) {
			t.Errorf("event %d: %s after %d attempts, retry %v; want %s, %d, %v", i, o.Status, o.Attempts, o.RetryIn, w.status, w.attempts, w.retry)
		}
	}
	if outcomes[4].Attempted {
		t.Error("a held-back event must not count as attempted")
	}
	runs := syncRuns(batch, outcomes, errs, time.Now())
	got := map[string]store.SyncRun{}
	for _, r := range runs {
		got[r.EntityType] = r
	}
	if r := got["product"]; r.Status != store.SyncPartial || r.RecordCount != 1 || !strings.Contains(r.ErrorSummary, "2 of 3 failed") {
		t.Errorf("product run: %+v", r)
	}
	if r := got["inventory"]; r.Status != store.SyncFailed || r.RecordCount != 0 || !strings.Contains(r.ErrorSummary, "1 of 1 failed: payload has no sku") {
		t.Errorf("inventory run (the held-back event is not in it): %+v", r)
	}
	if r := got["order"]; r.Status != store.SyncSucceeded || r.RecordCount != 1 || r.Direction != store.SyncOutbound || r.ErrorSummary != "" {
		t.Errorf("order run: %+v", r)
	}
}

func TestVaultOutageSpendsNoConnectorAttempt(t *testing.T) {
	e := startEnv(t)
	amazon := newAmazon(t)
	configID := e.amazonConnector(t, amazon, "store-15", []string{"inventory.updated"}, time.Hour)
	e.bed.Vault.Stop()
	e.run(t, Config{Connectors: fastConnectors})
	msg, eventID := envelopeMessage(t, "store-15", "inventory.updated", map[string]any{"sku": "SKU-1", "quantity": 3})
	e.produce(t, msg)
	ctx := context.Background()
	eventually(t, 20*time.Second, "waiting on Vault without spending attempts", func() error {
		status, attempts, lastErr, err := e.store.ConnectorDeliveryStatus(ctx, configID, eventID)
		if err != nil || status != store.DeliveryPending || attempts != 0 || !strings.Contains(lastErr, "credentials") {
			return fmt.Errorf("%s %d %q %v", status, attempts, lastErr, err)
		}
		return nil
	})
	// Longer than the whole retry schedule: still not dead-lettered.
	time.Sleep(1500 * time.Millisecond)
	if status, attempts, _, _ := e.store.ConnectorDeliveryStatus(ctx, configID, eventID); status != store.DeliveryPending || attempts != 0 {
		t.Fatalf("during the outage: %s after %d attempts", status, attempts)
	}
	if err := e.bed.Vault.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.bed.Vault.EnableKV2(ctx, "ss3/kv"); err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{"api-key": amazon.ClientID, "api-secret": amazon.ClientSecret, "refresh-token": amazon.RefreshToken} {
		if _, err := e.vault.Put(ctx, "connector/"+configID.String()+"/"+name, map[string]string{"value": value}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "sent once Vault is back", func() error {
		status, attempts, lastErr, err := e.store.ConnectorDeliveryStatus(ctx, configID, eventID)
		if err != nil || status != store.DeliveryDelivered || attempts != 1 {
			return fmt.Errorf("%s %d %q %v", status, attempts, lastErr, err)
		}
		return nil
	})
}
