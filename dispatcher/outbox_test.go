package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
)

// readUntilQuiet reads topic from the beginning until no message arrives
// for quiet.
func (e *env) readUntilQuiet(t *testing.T, topic string, quiet time.Duration) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.bed.Kafka.Brokers(), GroupID: "test-" + uuid.NewString(), GroupTopics: []string{topic},
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		m, err := r.ReadMessage(ctx)
		cancel()
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

func TestOutcomeNoticesSurviveKafkaRefusingThem(t *testing.T) {
	e := startEnv(t)
	ok, gone := newReceiver(t), newReceiver(t)
	gone.set(http.StatusGone, 0)
	e.subscribe(t, "store-a", ok.URL, []string{"order.*"}, nil)
	e.subscribe(t, "store-b", gone.URL, []string{"order.*"}, nil)
	e.produce(t, append(goodEvents(t, "store-a", 20), goodEvents(t, "store-b", 10)...)...)
	var refusing atomic.Bool
	refusing.Store(true)
	failProduce(e, &refusing)
	e.run(t, Config{OutageRetry: 200 * time.Millisecond})

	ctx := context.Background()
	eventually(t, 60*time.Second, "every outcome recorded, its notice kept in the outbox", func() error {
		var delivered, dead int
		if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'DELIVERED'), count(*) FILTER (WHERE status = 'DEAD_LETTERED')
			FROM webhook_deliveries`).Scan(&delivered, &dead); err != nil {
			return err
		}
		pending, err := e.store.PendingNotices(ctx)
		if err != nil || delivered != 20 || dead != 10 || pending != 30 {
			return fmt.Errorf("delivered %d, dead-lettered %d, notices waiting %d: %v", delivered, dead, pending, err)
		}
		return nil
	})
	time.Sleep(time.Second) // the relay keeps trying while Kafka refuses
	refusing.Store(false)
	eventually(t, 60*time.Second, "the outbox emptied once Kafka takes notices again", func() error {
		if pending, err := e.store.PendingNotices(ctx); err != nil || pending != 0 {
			return fmt.Errorf("%d notices waiting: %v", pending, err)
		}
		return nil
	})
	for topic, want := range map[string]int{"webhook.delivered": 20, "webhook.dead_lettered": 10} {
		seen := map[string]int{}
		for _, m := range e.readUntilQuiet(t, topic, 3*time.Second) {
			var notice struct {
				OutcomeID  string `json:"outcomeId"`
				DeliveryID string `json:"deliveryId"`
				Reason     string `json:"reason"`
			}
			if err := json.Unmarshal(m.Value, &notice); err != nil || notice.OutcomeID == "" || header(m, "outcome-id") != notice.OutcomeID {
				t.Fatalf("%s notice %s: %v", topic, m.Value, err)
			}
			if topic == "webhook.dead_lettered" && notice.Reason == "" {
				t.Fatalf("a dead-letter notice without its reason: %s", m.Value)
			}
			seen[notice.OutcomeID]++
		}
		if len(seen) != want {
			t.Fatalf("%s: %d distinct outcomes published, want %d", topic, len(seen), want)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("%s: outcome %s published %d times", topic, id, n)
			}
		}
	}
}
