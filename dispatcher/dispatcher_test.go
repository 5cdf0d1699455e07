package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"net/netip"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
)

func TestFanOutWildcardsAndTheThreeEventFormats(t *testing.T) {
	e := startEnv(t)
	exact := newReceiver(t)
	wild := newReceiver(t)
	products := newReceiver(t)
	otherStore := newReceiver(t)
	subExact, secretExact := e.subscribe(t, "store-a", exact.URL, []string{"order.placed"}, nil)
	_, secretWild := e.subscribe(t, "store-a", wild.URL, []string{"order.*"}, func(s *store.Subscription) {
		s.SignatureScheme = store.SignatureStandardWebhooks
	})
	e.subscribe(t, "store-a", products.URL, []string{"product.updated"}, nil)
	e.subscribe(t, "store-b", otherStore.URL, []string{"order.*"}, nil)
	e.run(t, Config{})

	placed, placedID := envelopeMessage(t, "store-a", "order.placed", map[string]any{"orderId": "o-1"})
	structured := kafka.Message{Value: []byte(`{"specversion":"1.0","id":"ce-42","source":"/catalog","type":"product.updated",
		"storeid":"store-a","datacontenttype":"application/json","data":{"sku":"s-1"}}`)}
	binary := kafka.Message{Value: []byte(`{"orderId":"o-2"}`), Headers: []kafka.Header{
		{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(uuid.NewString())},
		{Key: "ce_source", Value: []byte("/orders")}, {Key: "ce_type", Value: []byte("order.cancelled")},
		{Key: "ce_storeid", Value: []byte("store-a")}, {Key: "content-type", Value: []byte("application/json")}}}
	e.produce(t, placed, structured, binary)

	eventually(t, 20*time.Second, "deliveries", func() error {
		if len(exact.requests()) != 1 || len(wild.requests()) != 2 || len(products.requests()) != 1 {
			return fmt.Errorf("exact %d wild %d products %d", len(exact.requests()), len(wild.requests()), len(products.requests()))
		}
		return nil
	})
	if n := len(otherStore.requests()); n != 0 {
		t.Fatalf("another store's subscription got %d deliveries", n)
	}

	got := exact.requests()[0]
	if string(got.body) != `{"orderId":"o-1"}` || got.header.Get(HeaderEvent) != "order.placed" {
		t.Fatalf("delivered %s %v", got.body, got.header)
	}
	if !signing.VerifySS3(secretExact, got.body, got.header.Get(HeaderSignature)) {
		t.Fatal("X-SS3-Signature does not verify")
	}
	var deliveryID uuid.UUID
	eventually(t, 10*time.Second, "delivery recorded", func() error {
		return e.store.Pool().QueryRow(context.Background(), `SELECT delivery_id FROM webhook_deliveries
			WHERE subscription_id = $1 AND event_id = $2 AND status = 'DELIVERED' AND http_status = 200 AND attempt_number = 1
			  AND response_body = 'receiver says hi' AND delivered_at IS NOT NULL`, subExact.ID, placedID).Scan(&deliveryID)
	})
	if got.header.Get(HeaderDelivery) != deliveryID.String() {
		t.Fatal("X-SS3-Delivery is not the delivery id")
	}
	for _, r := range wild.requests() {
		if !signing.VerifyStandardWebhooks(secretWild, r.header.Get("webhook-id"), r.header.Get("webhook-timestamp"),
			r.header.Get("webhook-signature"), r.body, time.Now(), 5*time.Minute) {
			t.Fatal("Standard Webhooks signature does not verify")
		}
		if r.header.Get("webhook-id") != r.header.Get(HeaderDelivery) {
			t.Fatal("webhook-id should be the delivery id")
		}
	}
	if b := string(products.requests()[0].body); b != `{"sku":"s-1"}` {
		t.Fatalf("structured CloudEvent data: %s", b)
	}
	delivered := e.readTopic(t, "webhook.delivered", 4)
	var msg map[string]string
	if err := json.Unmarshal(delivered[0].Value, &msg); err != nil || msg["deliveryId"] == "" || msg["storeId"] != "store-a" || msg["eventType"] == "" {
		t.Fatalf("webhook.delivered payload %s", delivered[0].Value)
	}
}

func TestRetryScheduleDeadLetterAndRetrigger(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	recv.set(http.StatusInternalServerError, 0)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.*"}, nil)
	schedule := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}
	e.run(t, Config{RetrySchedule: schedule, BreakerOpen: 200 * time.Millisecond})
	msg, eventID := envelopeMessage(t, "store-a", "order.placed", map[string]any{"orderId": "o-9"})
	e.produce(t, msg)

	var deliveryID uuid.UUID
	eventually(t, 20*time.Second, "dead-lettered after five attempts", func() error {
		err := e.store.Pool().QueryRow(context.Background(), `SELECT delivery_id FROM webhook_deliveries
			WHERE subscription_id = $1 AND event_id = $2 AND status = 'DEAD_LETTERED'`, sub.ID, eventID).Scan(&deliveryID)
		return err
	})
	status, attempts, httpStatus, next, err := e.store.GetDelivery(context.Background(), deliveryID)
	if err != nil || status != store.DeliveryDeadLettered || attempts != 5 || httpStatus == nil || *httpStatus != 500 || next != nil {
		t.Fatalf("dead-lettered row: %s %d %v %v %v", status, attempts, httpStatus, next, err)
	}
	reqs := recv.requests()
	if len(reqs) != 5 {
		t.Fatalf("%d attempts reached the receiver, want 5", len(reqs))
	}
	for _, r := range reqs {
		if r.header.Get(HeaderDelivery) != deliveryID.String() {
			t.Fatal("the delivery id changed across retries")
		}
	}
	dl := e.readTopic(t, "webhook.dead_lettered", 1)
	var payload map[string]string
	if err := json.Unmarshal(dl[0].Value, &payload); err != nil || payload["deliveryId"] != deliveryID.String() ||
		payload["subscriptionId"] != sub.ID.String() || !strings.Contains(payload["reason"], "5 attempts failed") {
		t.Fatalf("webhook.dead_lettered: %s", dl[0].Value)
	}

	stats, err := e.store.SubscriptionStatsAll(context.Background())
	if st := stats[sub.ID]; err != nil || st.DeadLettered != 1 || st.FailedAttempts != 5 || st.ConsecutiveFailures != 5 ||
		st.Delivered != 0 || st.LastHTTPStatus == nil || *st.LastHTTPStatus != 500 || !strings.Contains(st.LastDeadLetterReason, "5 attempts failed") {
		t.Fatalf("stats after dead-lettering: %+v %v", st, err)
	}

	// Re-trigger once the receiver is fixed: delivered, same delivery id.
	recv.set(http.StatusOK, 0)
	if n, err := e.store.RequeueDeadLettered(context.Background(), sub.ID, nil); err != nil || n != 1 {
		t.Fatalf("requeue: %d %v", n, err)
	}
	eventually(t, 10*time.Second, "re-triggered delivery", func() error {
		status, _, _, _, err := e.store.GetDelivery(context.Background(), deliveryID)
		if err != nil || status != store.DeliveryDelivered {
			return fmt.Errorf("%s %v", status, err)
		}
		return nil
	})
	eventually(t, 5*time.Second, "health recovers", func() error {
		stats, err := e.store.SubscriptionStatsAll(context.Background())
		if st := stats[sub.ID]; err != nil || st.Delivered != 1 || st.ConsecutiveFailures != 0 || st.Pending != 0 {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	})
	last := recv.requests()[len(recv.requests())-1]
	if last.header.Get(HeaderDelivery) != deliveryID.String() {
		t.Fatal("a re-triggered delivery must keep its id")
	}
}

func TestHangingReceiverTimesOutAnd410StopsRetries(t *testing.T) {
	e := startEnv(t)
	hang := newReceiver(t)
	hang.set(http.StatusOK, 10*time.Second)
	gone := newReceiver(t)
	gone.set(http.StatusGone, 0)
	subHang, _ := e.subscribe(t, "store-a", hang.URL, []string{"order.placed"}, func(s *store.Subscription) { s.DeliveryTimeout = 500 * time.Millisecond })
	subGone, _ := e.subscribe(t, "store-a", gone.URL, []string{"order.placed"}, nil)
	e.run(t, Config{RetrySchedule: []time.Duration{0, time.Hour}})
	msg, eventID := envelopeMessage(t, "store-a", "order.placed", map[string]any{"orderId": "o-3"})
	e.produce(t, msg)

	eventually(t, 20*time.Second, "timeout recorded", func() error {
		var status, lastError string
		err := e.store.Pool().QueryRow(context.Background(), `SELECT status, COALESCE(last_error, '') FROM webhook_deliveries
			WHERE subscription_id = $1 AND event_id = $2`, subHang.ID, eventID).Scan(&status, &lastError)
		if err != nil || status != store.DeliveryFailed || !strings.Contains(lastError, "no answer within 500ms") {
			return fmt.Errorf("%s %q %v", status, lastError, err)
		}
		return nil
	})
	eventually(t, 20*time.Second, "410 dead-letters at once", func() error {
		var status, lastError string
		var attempts int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT status, attempt_number, COALESCE(last_error, '') FROM webhook_deliveries
			WHERE subscription_id = $1 AND event_id = $2`, subGone.ID, eventID).Scan(&status, &attempts, &lastError)
		if err != nil || status != store.DeliveryDeadLettered || attempts != 1 || !strings.Contains(lastError, "410 Gone") {
			return fmt.Errorf("%s %d %q %v", status, attempts, lastError, err)
		}
		return nil
	})
}

func TestPoisonMessagesAreSetAsideAndDoNotStopTheFlow(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, nil)
	e.run(t, Config{})
	good, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{"orderId": "o-4"})
	e.produce(t,
		kafka.Message{Value: []byte("not json at all")},
		kafka.Message{Value: []byte(`{"eventId":"not-a-uuid","eventType":"order.placed","storeId":"store-a","data":{}}`)},
		kafka.Message{Value: []byte(`{"specversion":"0.3","id":"x","type":"order.placed"}`)},
		good)
	eventually(t, 20*time.Second, "the good event delivered", func() error {
		if len(recv.requests()) != 1 {
			return fmt.Errorf("%d", len(recv.requests()))
		}
		return nil
	})
	poison := e.readTopic(t, "platform.events.poison", 3)
	if string(poison[0].Value) != "not json at all" && string(poison[1].Value) != "not json at all" && string(poison[2].Value) != "not json at all" {
		t.Fatal("the poison topic should hold the message unchanged")
	}
	for _, p := range poison {
		if header(p, "poison-reason") == "" || header(p, "poison-source") == "" {
			t.Fatalf("poison message lacks its reason and source: %v", p.Headers)
		}
	}
}

func TestPrivateDestinationsAreRefused(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, nil)
	e.run(t, Config{AllowedNetworks: []netip.Prefix{}, RetrySchedule: []time.Duration{0, time.Hour}})
	msg, eventID := envelopeMessage(t, "store-a", "order.placed", map[string]any{})
	e.produce(t, msg)
	eventually(t, 20*time.Second, "refusal recorded", func() error {
		var lastError string
		err := e.store.Pool().QueryRow(context.Background(), `SELECT COALESCE(last_error, '') FROM webhook_deliveries
			WHERE subscription_id = $1 AND event_id = $2 AND status = 'FAILED'`, sub.ID, eventID).Scan(&lastError)
		if err != nil || !strings.Contains(lastError, "destination address refused") {
			return fmt.Errorf("%q %v", lastError, err)
		}
		return nil
	})
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("a loopback receiver got %d requests without an allow-list", n)
	}
}

func TestVaultOutageBurnsNoAttempt(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	sub, secret := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, nil)
	e.bed.Vault.Stop()
	e.run(t, Config{})
	msg, eventID := envelopeMessage(t, "store-a", "order.placed", map[string]any{"orderId": "o-5"})
	e.produce(t, msg)
	eventually(t, 20*time.Second, "waiting on Vault without burning attempts", func() error {
		var status, lastError string
		var attempts int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT status, attempt_number, COALESCE(last_error, '') FROM webhook_deliveries
			WHERE subscription_id = $1 AND event_id = $2`, sub.ID, eventID).Scan(&status, &attempts, &lastError)
		if err != nil || status != store.DeliveryPending || attempts != 0 || !strings.Contains(lastError, "signing secret unavailable") {
			return fmt.Errorf("%s %d %q %v", status, attempts, lastError, err)
		}
		return nil
	})
	ctx := context.Background()
	if err := e.bed.Vault.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.bed.Vault.EnableKV2(ctx, "ss3/kv"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.vault.Put(ctx, "webhook/"+sub.ID.String()+"/secret", map[string]string{"secret": secret}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "delivered once Vault is back", func() error {
		var attempts int
		var status string
		err := e.store.Pool().QueryRow(ctx, `SELECT status, attempt_number FROM webhook_deliveries WHERE subscription_id = $1`, sub.ID).Scan(&status, &attempts)
		if err != nil || status != store.DeliveryDelivered || attempts != 1 {
			return fmt.Errorf("%s %d %v", status, attempts, err)
		}
		return nil
	})
}

func TestEndpointConcurrencyLimit(t *testing.T) {
	e := startEnv(t)
	var mu sync.Mutex
	inFlight, most := 0, 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer recv.Close()
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, func(s *store.Subscription) { s.MaxConcurrency = 2 })
	e.run(t, Config{})
	var msgs []kafka.Message
	for range 20 {
		m, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{})
		msgs = append(msgs, m)
	}
	e.produce(t, msgs...)
	eventually(t, 30*time.Second, "all delivered", func() error {
		stats, err := e.store.SubscriptionStatsAll(context.Background())
		if st := stats[sub.ID]; err != nil || st.Delivered != 20 {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if most > 2 {
		t.Fatalf("%d attempts in flight at once, limit 2", most)
	}
	if most < 2 {
		t.Fatalf("the limit should allow 2 at once, saw %d", most)
	}
}

func TestCircuitBreakerPausesAFailingEndpoint(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	recv.set(http.StatusBadGateway, 0)
	// One at a time, so the breaker sees each failure before the next attempt.
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, func(s *store.Subscription) { s.MaxConcurrency = 1 })
	e.run(t, Config{BreakerTrips: 3, BreakerOpen: time.Hour, RetrySchedule: []time.Duration{0, time.Hour}})
	var msgs []kafka.Message
	for range 10 {
		m, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{})
		msgs = append(msgs, m)
	}
	e.produce(t, msgs...)
	eventually(t, 20*time.Second, "circuit open, the rest waiting", func() error {
		var failed, waiting int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT
			count(*) FILTER (WHERE attempt_number = 1),
			count(*) FILTER (WHERE attempt_number = 0 AND last_error LIKE 'waiting: the circuit is open%')
			FROM webhook_deliveries WHERE subscription_id = $1`, sub.ID).Scan(&failed, &waiting)
		if err != nil || failed != 3 || waiting != 7 {
			return fmt.Errorf("failed %d waiting %d %v", failed, waiting, err)
		}
		return nil
	})
	if n := len(recv.requests()); n != 3 {
		t.Fatalf("the endpoint got %d requests; the circuit should stop them after 3", n)
	}
	eventually(t, 5*time.Second, "circuit state recorded", func() error {
		stats, err := e.store.SubscriptionStatsAll(context.Background())
		if st := stats[sub.ID]; err != nil || st.CircuitState != "open" {
			return fmt.Errorf("%q %v", st.CircuitState, err)
		}
		return nil
	})
}

func TestTopicPatternPicksUpNewTopics(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	e.subscribe(t, "store-a", recv.URL, []string{"order.*"}, nil)
	cfg := Config{}
	cfg.Kafka.TopicPattern = regexp.MustCompile(DefaultTopicPattern) // the binary's default
	cfg.Kafka.TopicRefresh = 200 * time.Millisecond
	cfg.Kafka.SessionTimeout = 6 * time.Second
	d := e.runWith(t, cfg, nil)

	first, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{"n": 1})
	e.produce(t, first)
	eventually(t, 20*time.Second, "delivered from the existing topic", func() error {
		if len(recv.requests()) != 1 {
			return fmt.Errorf("%d", len(recv.requests()))
		}
		return nil
	})

	// A topic created later is picked up; our own output topics are not consumed.
	admin := &kafka.Client{Addr: kafka.TCP(e.bed.Kafka.Brokers()...)}
	if _, err := admin.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: "platform.events.returns", NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: "platform.events.returns", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	later, _ := envelopeMessage(t, "store-a", "order.returned", map[string]any{"n": 2})
	eventually(t, 20*time.Second, "produced to the new topic", func() error { return w.WriteMessages(context.Background(), later) })
	eventually(t, 30*time.Second, "delivered from the new topic", func() error {
		if len(recv.requests()) != 2 {
			return fmt.Errorf("%d", len(recv.requests()))
		}
		return nil
	})
	if topics := d.topics(); slices.Contains(topics, "platform.events.poison") || !slices.Contains(topics, "platform.events.returns") {
		t.Fatalf("consumed topics: %v", topics)
	}
}

func TestRedirectsAreNotFollowedAndBodiesAreTruncated(t *testing.T) {
	e := startEnv(t)
	elsewhere := newReceiver(t)
	redirect := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusFound))
	defer redirect.Close()
	chatty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 100_000)))
	}))
	defer chatty.Close()
	subRedirect, _ := e.subscribe(t, "store-a", redirect.URL, []string{"order.placed"}, nil)
	subChatty, _ := e.subscribe(t, "store-a", chatty.URL, []string{"order.placed"}, nil)
	e.run(t, Config{RetrySchedule: []time.Duration{0, time.Hour}})
	msg, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{})
	e.produce(t, msg)
	eventually(t, 20*time.Second, "outcomes", func() error {
		var redirectStatus, chattyStatus string
		var bodyLen int
		err := e.store.Pool().QueryRow(context.Background(), `SELECT
			(SELECT status || '/' || http_status FROM webhook_deliveries WHERE subscription_id = $1),
			(SELECT status FROM webhook_deliveries WHERE subscription_id = $2),
			(SELECT length(response_body) FROM webhook_deliveries WHERE subscription_id = $2)`,
			subRedirect.ID, subChatty.ID).Scan(&redirectStatus, &chattyStatus, &bodyLen)
		if err != nil || redirectStatus != "FAILED/302" || chattyStatus != "DELIVERED" || bodyLen != 4096 {
			return fmt.Errorf("%s %s %d %v", redirectStatus, chattyStatus, bodyLen, err)
		}
		return nil
	})
	if n := len(elsewhere.requests()); n != 0 {
		t.Fatalf("the redirect was followed (%d requests)", n)
	}
}

func TestRotationOverlapSignsWithBothSecrets(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	sub, oldSecret := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, func(s *store.Subscription) {
		s.SignatureScheme = store.SignatureStandardWebhooks
	})
	newSecret, _ := signing.GenerateSecret()
	if _, err := e.vault.Put(context.Background(), "webhook/"+sub.ID.String()+"/secret", map[string]string{
		"secret": newSecret, "previous": oldSecret, "previous-expires-at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	e.run(t, Config{})
	msg, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{"orderId": "o-7"})
	e.produce(t, msg)
	eventually(t, 20*time.Second, "delivered", func() error {
		if len(recv.requests()) != 1 {
			return fmt.Errorf("%d", len(recv.requests()))
		}
		return nil
	})
	r := recv.requests()[0]
	for name, secret := range map[string]string{"new": newSecret, "old": oldSecret} {
		if !signing.VerifySS3(secret, r.body, r.header.Get(HeaderSignature)) {
			t.Errorf("X-SS3-Signature does not verify with the %s secret", name)
		}
		if !signing.VerifyStandardWebhooks(secret, r.header.Get("webhook-id"), r.header.Get("webhook-timestamp"),
			r.header.Get("webhook-signature"), r.body, time.Now(), 5*time.Minute) {
			t.Errorf("webhook-signature does not verify with the %s secret", name)
		}
	}
}

func TestSubscriptionChangesTakeEffectWithinSeconds(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, nil)
	e.run(t, Config{})
	refunded, _ := envelopeMessage(t, "store-a", "order.refunded", map[string]any{})
	e.produce(t, refunded)
	time.Sleep(time.Second)
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("an unsubscribed event was delivered")
	}
	sub.Events = []string{"order.*"}
	if _, err := e.store.UpsertSubscription(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	again, _ := envelopeMessage(t, "store-a", "order.refunded", map[string]any{})
	e.produce(t, again)
	eventually(t, 10*time.Second, "the widened subscription receives it", func() error {
		if len(recv.requests()) != 1 {
			return fmt.Errorf("%d", len(recv.requests()))
		}
		return nil
	})
}

func TestPostgresRestartDoesNotStallTheQueue(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, nil)
	e.run(t, Config{OutageRetry: 200 * time.Millisecond})
	produceN := func(n int) {
		var msgs []kafka.Message
		for range n {
			m, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{})
			msgs = append(msgs, m)
		}
		e.produce(t, msgs...)
	}
	produceN(50)
	eventually(t, 20*time.Second, "first deliveries", func() error {
		if len(recv.requests()) < 50 {
			return fmt.Errorf("%d", len(recv.requests()))
		}
		return nil
	})
	e.bed.Postgres.Stop()
	produceN(50) // arrive while the database is down
	time.Sleep(time.Second)
	if err := e.bed.Postgres.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	produceN(50)
	eventually(t, 60*time.Second, "every event delivered and recorded after the restart", func() error {
		stats, err := e.store.SubscriptionStatsAll(context.Background())
		if st := stats[sub.ID]; err != nil || st.Delivered < 150 || st.Pending != 0 {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	})
	var rows int
	_ = e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1`, sub.ID).Scan(&rows)
	if rows != 150 {
		t.Fatalf("%d delivery rows for 150 events", rows)
	}
}

func TestShutdownFinishesInFlightDeliveries(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	recv.set(http.StatusOK, 1500*time.Millisecond)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.placed"}, nil)
	stop := e.runStoppable(t, Config{})
	msg, _ := envelopeMessage(t, "store-a", "order.placed", map[string]any{})
	e.produce(t, msg)
	eventually(t, 20*time.Second, "attempt in flight", func() error {
		if len(recv.requests()) != 1 {
			return fmt.Errorf("%d", len(recv.requests()))
		}
		return nil
	})
	if err := stop(); err != nil { // SIGTERM while the receiver is still answering
		t.Fatal(err)
	}
	// Run returned only after the attempt finished and was recorded.
	status, attempts, _, _, err := e.store.GetDelivery(context.Background(), deliveryOf(t, e, sub.ID))
	if err != nil || status != store.DeliveryDelivered || attempts != 1 {
		t.Fatalf("after shutdown: %s %d %v", status, attempts, err)
	}
}

func deliveryOf(t *testing.T, e *env, sub uuid.UUID) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT delivery_id FROM webhook_deliveries WHERE subscription_id = $1`, sub).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
