package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// TestDispatcherReplicasSurviveKill9 runs two dispatcher processes in one
// consumer group, kills one with SIGKILL in the middle of the stream,
// restarts it, and checks that every event reached every subscriber, with
// duplicates only under the same delivery id.
func TestDispatcherReplicasSurviveKill9(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true, Vault: true, VaultKVMounts: []string{"ss3/kv"},
		KafkaTopics: []string{"platform.events", "platform.events.poison", "webhook.delivered", "webhook.dead_lettered"}, KafkaPartitions: 4})
	ctx := context.Background()
	st := bed.Store(t)
	pool := st.Pool()
	vc, err := vault.New(ctx, vault.Config{Address: bed.Vault.Addr(), Token: bed.Vault.Token()})
	if err != nil {
		t.Fatal(err)
	}

	// Two subscribers that verify signatures and note (subscription, event) -> delivery ids.
	type key struct{ sub, event string }
	var mu sync.Mutex
	seen := map[key]map[string]bool{}
	badSignatures := 0
	const subscribers = 2
	for i := range subscribers {
		secret, _ := signing.GenerateSecret()
		subID := uuid.New()
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var data struct {
				Event string `json:"event"`
			}
			_ = json.Unmarshal(body, &data)
			mu.Lock()
			if !signing.VerifySS3(secret, body, r.Header.Get("X-SS3-Signature")) {
				badSignatures++
			}
			k := key{subID.String(), data.Event}
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][r.Header.Get("X-SS3-Delivery")] = true
			mu.Unlock()
		}))
		defer recv.Close()
		if _, err := vc.Put(ctx, "webhook/"+subID.String()+"/secret", map[string]string{"secret": secret}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UpsertSubscription(ctx, store.Subscription{ID: subID, StoreID: "store-a", Name: fmt.Sprint("s", i),
			TargetURL: recv.URL, Events: []string{"order.*"}, IsActive: true, DeliveryTimeout: 5 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}

	bin := filepath.Join(t.TempDir(), "integration-operator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	logDir := t.TempDir()
	start := func(name string) *exec.Cmd {
		cmd := exec.Command(bin, "dispatcher", "--database-url", bed.DatabaseURL, "--kafka-brokers", bed.Kafka.Brokers()[0],
			"--kafka-topics", "platform.events", "--allow-networks", "127.0.0.0/8", "--metrics-bind-address", "127.0.0.1:0", "--inbound-bind-address", "127.0.0.1:0",
			"--vault-addr", bed.Vault.Addr(), "--claim-lease", "3s", "--poll-interval", "100ms", "--kafka-session-timeout", "6s", "--kafka-stall-timeout", "10s")
		cmd.Env = append(os.Environ(), "VAULT_TOKEN="+bed.Vault.Token())
		logPath := filepath.Join(logDir, name+".log")
		logf, _ := os.Create(logPath)
		t.Cleanup(func() {
			data, _ := os.ReadFile(logPath)
			// Whether the stall rejoin was needed, pass or fail.
			if n := strings.Count(string(data), "rejoining it"); n > 0 {
				t.Logf("replica %s rejoined the group %d times after a stall", name, n)
			}
			if t.Failed() {
				lines := strings.Split(strings.TrimSpace(string(data)), "\n")
				t.Logf("--- %s: last lines ---\n%s", name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
			}
		})
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	a := start("a")
	start("b")

	const events = 3000
	w := &kafka.Writer{Addr: kafka.TCP(bed.Kafka.Brokers()...), Topic: "platform.events", Balancer: &kafka.Hash{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	produce := func(from, to int) {
		msgs := make([]kafka.Message, 0, to-from)
		for i := from; i < to; i++ {
			id := uuid.New()
			value, _ := json.Marshal(map[string]any{"eventId": id, "eventType": "order.placed", "storeId": "store-a",
				"data": map[string]any{"event": id.String(), "n": i}})
			msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: value})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	delivered := func() int {
		var n int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'`).Scan(&n)
		return n
	}

	produce(0, events/2)
	deadline := time.Now().Add(60 * time.Second)
	for delivered() < events/3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d delivered before the kill", delivered())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	t.Logf("killed replica a with %d of %d deliveries done", delivered(), events*subscribers)
	produce(events/2, events)
	start("a-restarted")

	deadline = time.Now().Add(3 * time.Minute)
	for {
		mu.Lock()
		complete := len(seen)
		mu.Unlock()
		if delivered() == events*subscribers && complete == events*subscribers {
			break
		}
		if time.Now().After(deadline) {
			rows, _ := pool.Query(ctx, `SELECT status, attempt_number, COALESCE(last_error, ''), claimed_until IS NOT NULL, count(*)
				FROM webhook_deliveries GROUP BY 1, 2, 3, 4`)
			for rows.Next() {
				var status, lastError string
				var attempts, n int
				var claimed bool
				_ = rows.Scan(&status, &attempts, &lastError, &claimed, &n)
				t.Logf("%d deliveries %s attempts=%d claimed=%v %s", n, status, attempts, claimed, lastError)
			}
			rows.Close()
			client := &kafka.Client{Addr: kafka.TCP(bed.Kafka.Brokers()...)}
			parts := map[string][]int{"platform.events": {0, 1, 2, 3}}
			committed, _ := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "integration-dispatcher", Topics: parts})
			ends, _ := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{"platform.events": {
				kafka.LastOffsetOf(0), kafka.LastOffsetOf(1), kafka.LastOffsetOf(2), kafka.LastOffsetOf(3)}}})
			if committed != nil && ends != nil {
				t.Logf("committed %+v; ends %+v", committed.Topics, ends.Topics)
			}
			t.Fatalf("after the kill: %d rows delivered, %d (subscription, event) pairs received; want %d", delivered(), complete, events*subscribers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var rows int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries`).Scan(&rows)
	if rows != events*subscribers {
		t.Fatalf("%d delivery rows for %d (subscription, event) pairs", rows, events*subscribers)
	}
	for k, ids := range seen {
		if len(ids) != 1 {
			t.Fatalf("subscription %s got event %s under %d delivery ids", k.sub, k.event, len(ids))
		}
	}
	if badSignatures > 0 {
		t.Fatalf("%d deliveries with a bad signature", badSignatures)
	}
}
