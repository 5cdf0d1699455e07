package testbed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

func TestVaultKV2RoundTrip(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Vault: true, VaultKVMounts: []string{"ss3/kv"}})
	ctx := context.Background()
	c, err := bed.Vault.Client()
	if err != nil {
		t.Fatal(err)
	}
	kv := c.KVv2("ss3/kv")
	path := "integration-service/webhook/0d7c1f8e-1111-4c1e-9a7a-3b1f4e0c2a9d/secret"
	if _, err := kv.Put(ctx, path, map[string]any{"value": "first"}); err != nil {
		t.Fatalf("put: %v", err)
	}
	second, err := kv.Put(ctx, path, map[string]any{"value": "second"})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if second.VersionMetadata.Version != 2 {
		t.Fatalf("second write is version %d, want 2", second.VersionMetadata.Version)
	}
	got, err := kv.Get(ctx, path)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Data["value"] != "second" {
		t.Fatalf("read back %v, want the second write", got.Data["value"])
	}
	old, err := kv.GetVersion(ctx, path, 1)
	if err != nil || old.Data["value"] != "first" {
		t.Fatalf("version 1: %v, %v", old, err)
	}
}

func TestKafkaProducerAndConsumerGroup(t *testing.T) {
	const topic = "order.placed"
	bed := testbed.Start(t, testbed.Needs{KafkaTopics: []string{topic}, KafkaPartitions: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(bed.Kafka.Brokers()...), Topic: topic, Balancer: &kafka.Hash{},
		BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	const n = 300
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint(i % 17)), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}

	seen := consume(ctx, t, bed.Kafka.Brokers(), topic, n/2)
	// A second member of the same group resumes after the committed offsets.
	seen2 := consume(ctx, t, bed.Kafka.Brokers(), topic, n-n/2)
	for v := range seen2 {
		if seen[v] {
			t.Fatalf("message %s consumed twice across committed offsets", v)
		}
		seen[v] = true
	}
	if len(seen) != n {
		t.Fatalf("consumed %d distinct messages, want %d", len(seen), n)
	}
}

// consume reads count messages as a member of the "dispatcher" group,
// commits them, and leaves the group.
func consume(ctx context.Context, t *testing.T, brokers []string, topic string, count int) map[string]bool {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "dispatcher", GroupTopics: []string{topic},
		MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	seen := map[string]bool{}
	for len(seen) < count {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("consume after %d: %v", len(seen), err)
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	return seen
}

func TestPostgresSurvivesRestart(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, bed.DatabaseURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(`CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	bed.Postgres.Stop()
	if err := exec(`SELECT 1`); err == nil {
		t.Fatal("a stopped server still answers")
	}
	if err := bed.Postgres.Start(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, bed.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != 7 {
		t.Fatalf("after restart: %d, %v", v, err)
	}
}
