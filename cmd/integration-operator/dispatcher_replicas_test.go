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

// replicaBed runs dispatcher processes, built from this package, against
// the test bed, with subscribers that verify signatures and note which
// delivery ids each (subscription, event) arrived under.
type replicaBed struct {
	t      *testing.T
	bed    *testbed.Bed
	st     *store.Store
	vc     *vault.Client
	bin    string
	logDir string
	writer *kafka.Writer

	mu            sync.Mutex
	seen          map[seenKey]map[string]int
	badSignatures int
}

type seenKey struct{ sub, event string }

func startReplicaBed(t *testing.T) *replicaBed {
	t.Helper()
	bed := testbed.Start(t, testbed.Needs{Postgres: true, Vault: true, VaultKVMounts: []string{"ss3/kv"},
		KafkaTopics: []string{"platform.events", "platform.events.poison", "webhook.delivered", "webhook.dead_lettered"}, KafkaPartitions: 4})
	vc, err := vault.New(context.Background(), vault.Config{Address: bed.Vault.Addr(), Token: bed.Vault.Token()})
	if err != nil {
		t.Fatal(err)
	}
	b := &replicaBed{t: t, bed: bed, st: bed.Store(t), vc: vc, bin: filepath.Join(t.TempDir(), "integration-operator"), logDir: t.TempDir(),
		seen: map[seenKey]map[string]int{}}
	if out, err := exec.Command("go", "build", "-o", b.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	b.writer = &kafka.Writer{Addr: kafka.TCP(bed.Kafka.Brokers()...), Topic: "platform.events", Balancer: &kafka.Hash{},
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	t.Cleanup(func() { _ = b.writer.Close() })
	return b
}

// subscriber creates a subscription for store-a's orders whose endpoint
// answers 200 after delay.
func (b *replicaBed) subscriber(name string, delay time.Duration) uuid.UUID {
	b.t.Helper()
	ctx := context.Background()
	secret, _ := signing.GenerateSecret()
	subID := uuid.New()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var data struct {
			Event string `json:"event"`
		}
		_ = json.Unmarshal(body, &data)
		b.mu.Lock()
		if !signing.VerifySS3(secret, body, r.Header.Get("X-SS3-Signature")) {
			b.badSignatures++
		}
		k := seenKey{subID.String(), data.Event}
		if b.seen[k] == nil {
			b.seen[k] = map[string]int{}
		}
		b.seen[k][r.Header.Get("X-SS3-Delivery")]++
		b.mu.Unlock()
		time.Sleep(delay)
	}))
	b.t.Cleanup(recv.Close)
	if _, err := b.vc.Put(ctx, "webhook/"+subID.String()+"/secret", map[string]string{"secret": secret}); err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.st.UpsertSubscription(ctx, store.Subscription{ID: subID, StoreID: "store-a", Name: name,
		TargetURL: recv.URL, Events: []string{"order.*"}, IsActive: true, DeliveryTimeout: 5 * time.Second}); err != nil {
		b.t.Fatal(err)
	}
	return subID
}

// start runs a dispatcher replica; its log is shown when the test fails.
func (b *replicaBed) start(name string, args ...string) *exec.Cmd {
	b.t.Helper()
	return b.run(name, []string{"VAULT_TOKEN=" + b.bed.Vault.Token()}, append([]string{"dispatcher", "--database-url", b.bed.DatabaseURL,
		"--kafka-brokers", b.bed.Kafka.Brokers()[0], "--kafka-topics", "platform.events", "--allow-networks", "127.0.0.0/8",
		"--metrics-bind-address", "127.0.0.1:0", "--inbound-bind-address", "127.0.0.1:0", "--vault-addr", b.bed.Vault.Addr(),
		"--poll-interval", "100ms", "--kafka-session-timeout", "6s", "--kafka-stall-timeout", "10s"}, args...)...)
}

// run runs the binary with args and env added to this process's; its log
// is shown when the test fails.
func (b *replicaBed) run(name string, env []string, args ...string) *exec.Cmd {
	t := b.t
	t.Helper()
	cmd := exec.Command(b.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logPath := filepath.Join(b.logDir, name+".log")
	logf, _ := os.Create(logPath)
	t.Cleanup(func() {
		data, _ := os.ReadFile(logPath)
		if n := strings.Count(string(data), "rejoining"); n > 0 {
			t.Logf("replica %s rejoined the group %d times after a stall", name, n)
		}
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			t.Logf("--- %s: last lines ---\n%s", name, strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGCONT); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// produce writes store-a's order events from to to (exclusive), spread
// over the partitions.
func (b *replicaBed) produce(from, to int) {
	b.t.Helper()
	msgs := make([]kafka.Message, 0, to-from)
	for i := from; i < to; i++ {
		id := uuid.New()
		value, _ := json.Marshal(map[string]any{"eventId": id, "eventType": "order.placed", "storeId": "store-a",
			"data": map[string]any{"event": id.String(), "n": i}})
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint(i)), Value: value})
	}
	if err := b.writer.WriteMessages(context.Background(), msgs...); err != nil {
		b.t.Fatal(err)
	}
}

// logged counts the lines of replica name's log that contain substr.
func (b *replicaBed) logged(name, substr string) int {
	data, _ := os.ReadFile(filepath.Join(b.logDir, name+".log"))
	return strings.Count(string(data), substr)
}

func (b *replicaBed) delivered() int {
	var n int
	_ = b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE status = 'DELIVERED'`).Scan(&n)
	return n
}

func (b *replicaBed) waitDelivered(n int, within time.Duration, what string) {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for b.delivered() < n {
		if time.Now().After(deadline) {
			b.dumpState()
			b.t.Fatalf("%s: %d of %d delivered after %v", what, b.delivered(), n, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dumpState logs the deliveries by state and the group's offsets.
func (b *replicaBed) dumpState() {
	ctx := context.Background()
	rows, _ := b.st.Pool().Query(ctx, `SELECT status, attempt_number, COALESCE(last_error, ''), claimed_until IS NOT NULL, count(*)
		FROM webhook_deliveries GROUP BY 1, 2, 3, 4`)
	for rows.Next() {
		var status, lastError string
		var attempts, n int
		var claimed bool
		_ = rows.Scan(&status, &attempts, &lastError, &claimed, &n)
		b.t.Logf("%d deliveries %s attempts=%d claimed=%v %s", n, status, attempts, claimed, lastError)
	}
	rows.Close()
	client := &kafka.Client{Addr: kafka.TCP(b.bed.Kafka.Brokers()...)}
	parts := map[string][]int{"platform.events": {0, 1, 2, 3}}
	committed, _ := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "integration-dispatcher", Topics: parts})
	ends, _ := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{"platform.events": {
		kafka.LastOffsetOf(0), kafka.LastOffsetOf(1), kafka.LastOffsetOf(2), kafka.LastOffsetOf(3)}}})
	if committed != nil && ends != nil {
		b.t.Logf("committed %+v; ends %+v", committed.Topics, ends.Topics)
	}
	if groups, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{"integration-dispatcher"}}); err == nil {
		for _, g := range groups.Groups {
			b.t.Logf("group %s state %s", g.GroupID, g.GroupState)
			for _, m := range g.Members {
				b.t.Logf("member %s client %s assigned %+v", m.MemberID, m.ClientID, m.MemberAssignments.Topics)
			}
		}
	}
}

// checkEveryEventOnce checks that every (subscription, event) pair has one
// row and arrived under one delivery id, signed; it returns how many
// requests arrived more than once (under that same id).
func (b *replicaBed) checkEveryEventOnce(pairs int) (resent int) {
	b.t.Helper()
	var rows int
	_ = b.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries`).Scan(&rows)
	if rows != pairs {
		b.t.Fatalf("%d delivery rows for %d (subscription, event) pairs", rows, pairs)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) != pairs {
		b.t.Fatalf("%d (subscription, event) pairs received, want %d", len(b.seen), pairs)
	}
	for k, ids := range b.seen {
		if len(ids) != 1 {
			b.t.Fatalf("subscription %s got event %s under %d delivery ids", k.sub, k.event, len(ids))
		}
		for _, n := range ids {
			resent += n - 1
		}
	}
	if b.badSignatures > 0 {
		b.t.Fatalf("%d deliveries with a bad signature", b.badSignatures)
	}
	return resent
}

// TestDispatcherReplicasSurviveKill9 runs two dispatcher processes in one
// consumer group, kills one with SIGKILL in the middle of the stream,
// restarts it, and checks that every event reached every subscriber, with
// duplicates only under the same delivery id.
func TestDispatcherReplicasSurviveKill9(t *testing.T) {
	b := startReplicaBed(t)
	const subscribers, events = 2, 3000
	for i := range subscribers {
		b.subscriber(fmt.Sprint("s", i), 0)
	}
	a := b.start("a", "--claim-lease", "3s")
	b.start("b", "--claim-lease", "3s")
	b.produce(0, events/2)
	b.waitDelivered(events/3, time.Minute, "before the kill")
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	t.Logf("killed replica a with %d of %d deliveries done", b.delivered(), events*subscribers)
	b.produce(events/2, events)
	b.start("a-restarted", "--claim-lease", "3s")
	b.waitDelivered(events*subscribers, 3*time.Minute, "after the kill")
	b.checkEveryEventOnce(events * subscribers)
}

// With the default lease and no restart: what the killed replica had
// claimed (queued or in flight) is delivered by the other replica within
// 30 s of the kill, not after the old 5-minute lease.
func TestAKilledReplicasClaimsAreDeliveredWithin30s(t *testing.T) {
	b := startReplicaBed(t)
	const events = 1500
	b.subscriber("slow", 50*time.Millisecond)
	a := b.start("a")
	b.start("b")
	b.produce(0, events)
	b.waitDelivered(events/4, time.Minute, "before the kill")
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = a.Wait()
	ctx := context.Background()
	rows, err := b.st.Pool().Query(ctx, `SELECT delivery_id FROM webhook_deliveries WHERE status IN ('PENDING', 'FAILED')
		AND claimed_until > now()`)
	if err != nil {
		t.Fatal(err)
	}
	var claimedAtKill []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		_ = rows.Scan(&id)
		claimedAtKill = append(claimedAtKill, id)
	}
	rows.Close()
	if len(claimedAtKill) == 0 {
		t.Fatal("nothing was claimed when the replica was killed; the test proves nothing")
	}
	deadline := killed.Add(30 * time.Second)
	for {
		var left int
		if err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE delivery_id = ANY($1) AND status <> 'DELIVERED'`,
			claimedAtKill).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.dumpState()
			t.Fatalf("%d of the %d deliveries claimed at the kill not delivered 30 s after it", left, len(claimedAtKill))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d deliveries claimed at the kill, all delivered %v after it", len(claimedAtKill), time.Since(killed).Round(100*time.Millisecond))
	b.waitDelivered(events, 2*time.Minute, "the rest")
	resent := b.checkEveryEventOnce(events)
	t.Logf("%d requests sent again under the same delivery id", resent)
}

// A replica frozen for 20 s (SIGSTOP) while its endpoint answers every
// request in time: nothing is counted against the endpoint (no failed
// attempt, no breaker opened), and every event is delivered, duplicates
// only under the same delivery id.
func TestAFrozenReplicaCountsNoFailureAgainstTheEndpoint(t *testing.T) {
	b := startReplicaBed(t)
	const events = 600
	sub := b.subscriber("steady", 100*time.Millisecond)
	a := b.start("a")
	b.start("b")
	b.produce(0, events)
	b.waitDelivered(events/5, time.Minute, "before the freeze")
	if err := a.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Second)
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	b.waitDelivered(events, 2*time.Minute, "after the freeze")
	time.Sleep(3 * time.Second) // the thawed replica's late outcomes, if any
	ctx := context.Background()
	stats, err := b.st.SubscriptionStatsAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := stats[sub]
	if st.FailedAttempts != 0 || st.ConsecutiveFailures != 0 || st.CircuitState != "closed" || st.Delivered != events {
		t.Fatalf("the endpoint was blamed for the freeze: %+v", st)
	}
	var retried int
	if err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE attempt_number <> 1`).Scan(&retried); err != nil || retried != 0 {
		t.Fatalf("%d deliveries took more than one counted attempt (%v)", retried, err)
	}
	resent := b.checkEveryEventOnce(events)
	t.Logf("%d requests sent again under the same delivery id; the thawed replica logged %d claim losses and %d fenced outcome batches",
		resent, b.logged("a", "claims lost"), b.logged("a", "outcomes not recorded"))
}
