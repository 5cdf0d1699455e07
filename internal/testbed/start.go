package testbed

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Needs says which dependencies a test wants.
type Needs struct {
	Kube     bool
	Postgres bool
	// PostgresDurable starts Postgres with fsync, synchronous commit and
	// full-page writes on (implies Postgres): for figures called durable.
	PostgresDurable bool
	// Vault starts a dev server with a KV v2 mount at each of VaultKVMounts.
	Vault         bool
	VaultKVMounts []string
	// KafkaTopics, when non-empty, starts a broker with these topics.
	KafkaTopics     []string
	KafkaPartitions int32
	// SQSQueues, when non-empty, starts goaws with these queues.
	SQSQueues []string
	// ActiveMQ starts a STOMP broker.
	ActiveMQ bool
}

// Bed holds what Start started; fields for dependencies not asked for are nil.
type Bed struct {
	Kube     *Kube
	Postgres *Postgres
	// DatabaseURL is a fresh database on Postgres with nothing in it.
	DatabaseURL string
	Vault       *Vault
	Kafka       *Kafka
	SQS         *SQS
	ActiveMQ    *ActiveMQ
}

// Start brings up what needs asks for, concurrently, and registers their
// teardown with t.Cleanup. It fails the test when anything cannot start.
func Start(t testing.TB, needs Needs) *Bed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bed := &Bed{}
	var g errgroup.Group
	if needs.Kube {
		g.Go(func() (err error) { bed.Kube, err = StartKube(); return err })
	}
	if needs.Postgres || needs.PostgresDurable {
		g.Go(func() (err error) {
			start := StartPostgres
			if needs.PostgresDurable {
				start = StartDurablePostgres
			}
			if bed.Postgres, err = start(ctx); err != nil {
				return err
			}
			bed.DatabaseURL, err = bed.Postgres.CreateDatabase(ctx)
			return err
		})
	}
	if needs.Vault {
		g.Go(func() (err error) {
			if bed.Vault, err = StartVault(ctx); err != nil {
				return err
			}
			for _, m := range needs.VaultKVMounts {
				if err := bed.Vault.EnableKV2(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if len(needs.KafkaTopics) > 0 {
		g.Go(func() (err error) {
			partitions := needs.KafkaPartitions
			if partitions == 0 {
				partitions = 1
			}
			bed.Kafka, err = StartKafka(partitions, needs.KafkaTopics...)
			return err
		})
	}
	if len(needs.SQSQueues) > 0 {
		g.Go(func() (err error) { bed.SQS, err = StartSQS(ctx, needs.SQSQueues...); return err })
	}
	if needs.ActiveMQ {
		g.Go(func() (err error) { bed.ActiveMQ, err = StartActiveMQ(ctx); return err })
	}
	err := g.Wait()
	t.Cleanup(bed.Close)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return bed
}

// Close stops everything that was started.
func (b *Bed) Close() {
	if b.ActiveMQ != nil {
		b.ActiveMQ.Close()
	}
	if b.SQS != nil {
		b.SQS.Close()
	}
	if b.Kafka != nil {
		b.Kafka.Close()
	}
	if b.Vault != nil {
		b.Vault.Close()
	}
	if b.Postgres != nil {
		b.Postgres.Close()
	}
	if b.Kube != nil {
		b.Kube.Close()
	}
}

// Store migrates the bed's database and returns a store over a pool that
// is closed when the test ends.
func (b *Bed) Store(t testing.TB) *store.Store {
	t.Helper()
	ctx := context.Background()
	if _, err := store.Migrate(ctx, b.DatabaseURL); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	pool, err := store.Open(ctx, b.DatabaseURL)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Cleanup(pool.Close)
	return store.New(pool)
}
