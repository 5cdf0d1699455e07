package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/testbed"
)

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()

	applied, err := store.Migrate(ctx, bed.DatabaseURL)
	if err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	if len(applied) == 0 || applied[0] != 1 {
		t.Fatalf("first migrate applied %v, want versions starting at 1", applied)
	}
	again, err := store.Migrate(ctx, bed.DatabaseURL)
	if err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if len(again) != 0 {
		t.Fatalf("second migrate applied %v, want nothing", again)
	}

	// Replicas starting together on a fresh database: one applies, none fails.
	fresh, err := bed.Postgres.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([][]int64, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Go(func() { results[i], errs[i] = store.Migrate(ctx, fresh) })
	}
	wg.Wait()
	total := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("concurrent migrate %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	if total != len(applied) {
		t.Fatalf("concurrent migrates applied %d versions in all, want %d", total, len(applied))
	}
}

func TestSchemaHasTheSpecifiedTablesAndConstraints(t *testing.T) {
	bed := testbed.Start(t, testbed.Needs{Postgres: true})
	ctx := context.Background()
	if _, err := store.Migrate(ctx, bed.DatabaseURL); err != nil {
		t.Fatal(err)
	}
	pool, err := store.Open(ctx, bed.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	want := map[string][]string{
		"webhook_subscriptions": {"subscription_id", "store_id", "name", "target_url", "events", "is_active"},
		"webhook_deliveries": {"delivery_id", "subscription_id", "store_id", "event_type", "event_id", "event_payload",
			"http_status", "response_body", "attempt_number", "next_retry_at", "delivered_at", "status"},
		"api_credentials": {"credential_id", "store_id", "name", "type", "client_id", "hashed_secret", "scopes",
			"is_active", "last_used_at", "expires_at", "created_by"},
		"connector_configs":  {"config_id", "store_id", "connector_type", "display_name", "is_active", "event_subscriptions", "settings"},
		"connector_sync_log": {"config_id", "direction", "entity_type", "record_count", "status", "error_summary"},
	}
	for table, columns := range want {
		for _, column := range columns {
			var n int
			err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
				WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2`, table, column).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("%s.%s missing", table, column)
			}
		}
	}

	var indexdef string
	if err := pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'webhook_deliveries_status_next_retry_idx'`).Scan(&indexdef); err != nil {
		t.Fatalf("due-scan index: %v", err)
	}

	sub := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO webhook_subscriptions (subscription_id, store_id, name, target_url, events)
		VALUES ($1, 'store-1', 'n', 'https://example.com', '{order.placed}')`, sub); err != nil {
		t.Fatal(err)
	}
	event := uuid.New()
	insertDelivery := `INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, event_payload)
		VALUES ($1, $2, 'store-1', 'order.placed', $3, '{}')`
	if _, err := pool.Exec(ctx, insertDelivery, uuid.New(), sub, event); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, insertDelivery, uuid.New(), sub, event)
	if code := pgCode(err); code != "23505" {
		t.Fatalf("duplicate (subscription_id, event_id): got %v, want unique violation", err)
	}
	_, err = pool.Exec(ctx, `UPDATE webhook_deliveries SET status = 'LOST'`)
	if code := pgCode(err); code != "23514" {
		t.Fatalf("unknown status: got %v, want check violation", err)
	}
	_, err = pool.Exec(ctx, insertDelivery, uuid.New(), uuid.New(), uuid.New())
	if code := pgCode(err); code != "23503" {
		t.Fatalf("delivery for unknown subscription: got %v, want foreign key violation", err)
	}
}

func TestOpenRedactsPasswordFromParseErrors(t *testing.T) {
	_, err := store.Open(context.Background(), "postgres://user:hunter2@host:notaport/db")
	if err == nil {
		t.Fatal("want an error for a malformed url")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
