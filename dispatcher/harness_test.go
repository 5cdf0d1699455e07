package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
	"github.com/ss3dev/integration-operator/internal/vault"
)

const eventsTopic = "platform.events"

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

type env struct {
	bed   *testbed.Bed
	store *store.Store
	vault *vault.Client
}

func startEnv(t testing.TB) *env {
	t.Helper()
	return startEnvDurable(t, false)
}

// startEnvDurable is startEnv, with a Postgres that fsyncs when durable
// (for benchmark figures called durable).
func startEnvDurable(t testing.TB, durable bool) *env {
	t.Helper()
	bed := testbed.Start(t, testbed.Needs{Postgres: true, PostgresDurable: durable, Vault: true, VaultKVMounts: []string{"ss3/kv"},
		KafkaTopics: []string{eventsTopic, "platform.events.poison", "webhook.delivered", "webhook.dead_lettered"}, KafkaPartitions: 2})
	ctx := context.Background()
	st := bed.Store(t)
	vc, err := vault.New(ctx, vault.Config{Address: bed.Vault.Addr(), Token: bed.Vault.Token()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{bed: bed, store: st, vault: vc}
}

// subscribe creates an active subscription with a signing secret, as the
// manager would, and returns it with its secret.
func (e *env) subscribe(t testing.TB, storeID, target string, events []string, mutate func(*store.Subscription)) (store.Subscription, string) {
	t.Helper()
	sub := store.Subscription{ID: uuid.New(), StoreID: storeID, Name: "test", TargetURL: target, Events: events,
		IsActive: true, DeliveryTimeout: 5 * time.Second, SignatureScheme: store.SignatureSS3}
	if mutate != nil {
		mutate(&sub)
	}
	secret, _ := signing.GenerateSecret()
	if _, err := e.vault.Put(context.Background(), "webhook/"+sub.ID.String()+"/secret", map[string]string{"secret": secret}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.UpsertSubscription(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
	return sub, secret
}

// run starts a dispatcher on the events topic and stops it when the test ends.
func (e *env) run(t testing.TB, cfg Config) *Dispatcher {
	t.Helper()
	return e.runWith(t, cfg, []string{eventsTopic})
}

func (e *env) runWith(t testing.TB, cfg Config, topics []string) *Dispatcher {
	t.Helper()
	d, _ := e.start(t, cfg, topics)
	return d
}

// start starts a dispatcher on topics and returns it with stop, which ends
// it (once; the test's end calls it too).
func (e *env) start(t testing.TB, cfg Config, topics []string) (*Dispatcher, func()) {
	t.Helper()
	cfg.Kafka.Brokers = e.bed.Kafka.Brokers()
	cfg.Kafka.Topics = topics
	if cfg.AllowedNetworks == nil {
		cfg.AllowedNetworks = loopback
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.OutageRetry == 0 {
		cfg.OutageRetry = 200 * time.Millisecond
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, e.store, e.vault, m, testr.NewWithInterface(t, testr.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("dispatcher: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("dispatcher did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// runStoppable starts a dispatcher the test stops itself, as SIGTERM
// would; stop cancels it and returns what Run returned.
func (e *env) runStoppable(t *testing.T, cfg Config) (stop func() error) {
	t.Helper()
	cfg.AllowedNetworks, cfg.PollInterval, cfg.OutageRetry = loopback, 50*time.Millisecond, 200*time.Millisecond
	cfg.Kafka.Brokers, cfg.Kafka.Topics = e.bed.Kafka.Brokers(), []string{eventsTopic}
	m, _ := NewMetrics(prometheus.NewRegistry())
	d, err := New(cfg, e.store, e.vault, m, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// refuseStoreXWrites makes Postgres refuse store-x's deliveries as a full
// disk would (class 53: an outage, which retrying cures) until allow is
// called.
func (e *env) refuseStoreXWrites(t *testing.T) (allow func()) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.store.Pool().Exec(ctx, `
		CREATE FUNCTION refuse_store_x() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.store_id = 'store-x' THEN RAISE EXCEPTION 'no space left (test)' USING ERRCODE = '53100'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_store_x BEFORE INSERT ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION refuse_store_x();`); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		// Dropping a trigger locks every partition, and can deadlock with the
		// dispatcher's retried inserts or its retention pass; Postgres then
		// aborts one side, and the drop is tried again.
		for attempt := 1; ; attempt++ {
			_, err := e.store.Pool().Exec(ctx, `DROP TRIGGER refuse_store_x ON webhook_deliveries`)
			var pgErr *pgconn.PgError
			if err == nil {
				return
			}
			if !errors.As(err, &pgErr) || pgErr.Code != "40P01" || attempt == 10 {
				t.Fatal(err)
			}
		}
	}
}

func (e *env) produce(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: eventsTopic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func envelopeMessage(t *testing.T, storeID, eventType string, data any) (kafka.Message, uuid.UUID) {
	t.Helper()
	id := uuid.New()
	value, err := json.Marshal(map[string]any{"eventId": id, "eventType": eventType, "storeId": storeID,
		"time": time.Now().UTC(), "data": data})
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Key: []byte(storeID), Value: value}, id
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a local webhook endpoint that records what it gets and
// answers with status (settable while running).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int
	delay  time.Duration
	answer []byte // nil: "receiver says hi"
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body})
		status, delay, answer := r.status, r.delay, r.answer
		r.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-req.Context().Done():
			}
		}
		if answer == nil {
			answer = []byte("receiver says hi")
		}
		w.WriteHeader(status)
		_, _ = w.Write(answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) set(status int, delay time.Duration) {
	r.mu.Lock()
	r.status, r.delay = status, delay
	r.mu.Unlock()
}

// setAnswer makes the receiver answer with body (any bytes).
func (r *receiver) setAnswer(body []byte) {
	r.mu.Lock()
	r.answer = body
	r.mu.Unlock()
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testbed.Eventually(t, timeout, 20*time.Millisecond, what, cond)
}

// readTopic reads n messages from topic from the beginning.
func (e *env) readTopic(t *testing.T, topic string, n int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.bed.Kafka.Brokers(), GroupID: "test-" + uuid.NewString(), GroupTopics: []string{topic},
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s after %d: %v", topic, len(out), err)
		}
		out = append(out, m)
	}
	return out
}
