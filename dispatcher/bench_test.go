package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
	"github.com/ss3dev/integration-operator/internal/tracing"
)

// BenchmarkDispatcher drives the whole pipeline with Postgres, Vault and
// kfake local: events spread over 10 stores, each with a subscription to
// its own loopback receiver, so each event is one delivery. It reports
// sustained deliveries/s, the same with tracing on (every span exported
// over OTLP/gRPC to a local receiver, so the cost of tracing shows beside
// it), the same with persistence off (the ceiling, so the cost of
// durability shows), and produce-to-receipt latency at a fixed 1,000
// events/s. Run once per size:
//
//	go test -run '^$' -bench Dispatcher -benchtime 1x ./dispatcher/
//
// BENCH_EVENTS (default 100000) sets the events of the throughput runs;
// BENCH_QUEUE_EVENTS (default 20000) those of the runs to queue
// destinations: an SQS queue per store on goaws, and a queue per store on
// ActiveMQ (persistent sends, each acknowledged by a receipt).
func BenchmarkDispatcher(b *testing.B) {
	events := 100_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_EVENTS")); err == nil && v > 0 {
		events = v
	}
	queueEvents := 20_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_QUEUE_EVENTS")); err == nil && v > 0 {
		queueEvents = v
	}
	const receivers = 10
	b.Run("durable-throughput", func(b *testing.B) { benchThroughput(b, events, receivers, false, false) })
	b.Run("durable-throughput-traced", func(b *testing.B) { benchThroughput(b, events, receivers, false, true) })
	b.Run("ephemeral-ceiling", func(b *testing.B) { benchThroughput(b, events, receivers, true, false) })
	b.Run("durable-throughput-sqs", func(b *testing.B) { benchQueueThroughput(b, queueEvents, store.DestinationSQS) })
	b.Run("durable-throughput-activemq", func(b *testing.B) { benchQueueThroughput(b, queueEvents, store.DestinationSTOMP) })
	b.Run("durable-latency-1000eps", func(b *testing.B) { benchLatency(b, 1000, 10*time.Second, receivers) })
}

// benchReceivers starts n receivers that count deliveries and note
// produce-to-receipt latency from the event's producedAt.
type benchReceivers struct {
	servers   []*httptest.Server
	delivered atomic.Int64
	mu        sync.Mutex
	latencies []time.Duration
}

func startBenchReceivers(b testing.TB, n int) *benchReceivers {
	br := &benchReceivers{}
	for range n {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var data struct {
				ProducedAt int64 `json:"producedAt"`
			}
			if json.Unmarshal(body, &data) == nil && data.ProducedAt > 0 {
				lat := time.Since(time.Unix(0, data.ProducedAt))
				br.mu.Lock()
				br.latencies = append(br.latencies, lat)
				br.mu.Unlock()
			}
			br.delivered.Add(1)
		}))
		b.Cleanup(srv.Close)
		br.servers = append(br.servers, srv)
	}
	return br
}

// benchEnv is the environment of a run; durable runs get a Postgres that
// fsyncs every commit, as in production.
func benchEnv(b *testing.B, receivers int, durable bool) (*env, *benchReceivers) {
	e := startEnvDurable(b, durable)
	br := startBenchReceivers(b, receivers)
	for i, srv := range br.servers {
		e.subscribe(b, fmt.Sprint("bench-store-", i), srv.URL, []string{"order.*"}, nil)
	}
	return e, br
}

const benchStores = 10

func benchMessages(from, to int) []kafka.Message {
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		value, _ := json.Marshal(map[string]any{"eventId": uuid.New(), "eventType": "order.placed", "storeId": fmt.Sprint("bench-store-", i%benchStores),
			"data": map[string]any{"orderId": i, "producedAt": time.Now().UnixNano()}})
		msgs = append(msgs, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: value})
	}
	return msgs
}

// produceBench writes the benchmark's events before the run, so that the
// run measures the dispatcher alone.
func produceBench(b *testing.B, e *env, events int) {
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: eventsTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond}
	defer w.Close()
	for from := 0; from < events; from += 5000 {
		if err := w.WriteMessages(context.Background(), benchMessages(from, min(from+5000, events))...); err != nil {
			b.Fatal(err)
		}
	}
}

// countDelivered counts the deliveries recorded DELIVERED.
func countDelivered(e *env) func() int64 {
	return func() int64 {
		var n int64
		_ = e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'`).Scan(&n)
		return n
	}
}

// benchQueueThroughput is durable-throughput with each store's
// subscription delivering to a queue: deliveries/s are those recorded
// DELIVERED, each taken by the broker (SQS answer, STOMP receipt).
func benchQueueThroughput(b *testing.B, events int, kind string) {
	e := startEnvDurable(b, true)
	queues := make([]string, benchStores)
	for i := range queues {
		queues[i] = fmt.Sprint("bench-", i)
	}
	bed := testbed.Start(b, testbed.Needs{SQSQueues: queues, ActiveMQ: kind == store.DestinationSTOMP})
	for i, q := range queues {
		storeID := fmt.Sprint("bench-store-", i)
		if kind == store.DestinationSQS {
			e.sqsSubscription(b, storeID, bed.SQS.QueueURL(q), sqsKeyID)
		} else {
			e.stompSubscription(b, storeID, bed.ActiveMQ.Addr(), "/queue/"+q)
		}
	}
	produceBench(b, e, events)
	b.ResetTimer()
	start := time.Now()
	d := e.run(b, Config{Workers: 128})
	waitFor(b, "deliveries recorded DELIVERED", int64(events), countDelivered(e), d)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(events)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(events), "events")
	b.ReportMetric(0, "ns/op")
}

func benchThroughput(b *testing.B, events, receivers int, ephemeral, traced bool) {
	e, br := benchEnv(b, receivers, !ephemeral)
	var tr *tracing.Tracing
	var otlp *testbed.Collector
	if traced {
		otlp = testbed.StartCollector(b)
		var err error
		if tr, err = tracing.Start(context.Background(), tracing.Settings{Endpoint: otlp.Endpoint(), ServiceName: "bench"}, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	produceBench(b, e, events)
	want := int64(events)
	b.ResetTimer()
	start := time.Now()
	d := e.run(b, Config{Ephemeral: ephemeral, Workers: 128, Tracing: tr})
	waitFor(b, "deliveries received", want, br.delivered.Load, d)
	elapsed := time.Since(start)
	b.StopTimer()
	if !ephemeral {
		// Durable means recorded: wait for the outcomes to be written too.
		waitFor(b, "deliveries recorded DELIVERED", want, countDelivered(e), d)
		elapsed = time.Since(start)
	}
	b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(events), "events")
	if traced {
		// Every span was made and sent (consume, persist, deliver per event).
		_ = tr.Shutdown(context.Background())
		spans, err := otlp.Spans()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(spans)), "spans")
	}
	b.ReportMetric(0, "ns/op")
}

// benchStall is how long a benchmark waits with no progress before it
// fails, saying what it was waiting for.
const benchStall = time.Minute

// waitFor waits until count() reaches want, failing with the counts, the
// consumer lag and the outcomes so far when it stops moving for benchStall.
func waitFor(b testing.TB, what string, want int64, count func() int64, d *Dispatcher) {
	b.Helper()
	last, lastMove := count(), time.Now()
	for last < want {
		time.Sleep(5 * time.Millisecond)
		if n := count(); n != last {
			last, lastMove = n, time.Now()
			continue
		}
		if time.Since(lastMove) > benchStall {
			outcomes := map[string]float64{}
			for _, status := range []string{"DELIVERED", "FAILED", "PENDING", "DEAD_LETTERED"} {
				outcomes[status] = testutil.ToFloat64(d.metrics.Outcomes.WithLabelValues(status))
			}
			b.Fatalf("%s: %d of %d, no progress for %v; consumer lag %v, outcomes %v, events decoded %v",
				what, last, want, benchStall, testutil.ToFloat64(d.metrics.ConsumerLag), outcomes, testutil.ToFloat64(d.metrics.Events))
		}
	}
}

func benchLatency(b *testing.B, rate int, duration time.Duration, receivers int) {
	e, br := benchEnv(b, receivers, true)
	d := e.run(b, Config{Workers: 128})
	w := &kafka.Writer{Addr: kafka.TCP(e.bed.Kafka.Brokers()...), Topic: eventsTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond}
	defer w.Close()
	// Warm up the consumer group before measuring.
	if err := w.WriteMessages(context.Background(), benchMessages(0, 1)...); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "the warm-up delivery", 1, br.delivered.Load, d)
	br.mu.Lock()
	br.latencies = nil
	br.mu.Unlock()
	base := br.delivered.Load()

	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond) // rate/100 events every 10 ms
	defer tick.Stop()
	perTick := rate / 100
	total := 0
	for deadline := time.Now().Add(duration); time.Now().Before(deadline); {
		<-tick.C
		if err := w.WriteMessages(context.Background(), benchMessages(total, total+perTick)...); err != nil {
			b.Fatal(err)
		}
		total += perTick
	}
	waitFor(b, "deliveries received", base+int64(total), br.delivered.Load, d)
	b.StopTimer()
	br.mu.Lock()
	lat := slices.Clone(br.latencies)
	br.mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(total)/duration.Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
	fmt.Fprintf(os.Stderr, "latency run: %d events, %d deliveries\n", total, len(lat))
}
