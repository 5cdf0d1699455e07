package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
	"github.com/ss3dev/integration-operator/internal/store"
)

func TestDeletedSubscriptionsEndTheirDeliveriesAndPausedOnesHoldThem(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	deletedRecv, pausedRecv := newReceiver(t), newReceiver(t)
	deletedRecv.set(http.StatusInternalServerError, 0)
	pausedRecv.set(http.StatusServiceUnavailable, 0)
	deleted, _ := e.subscribe(t, "store-del", deletedRecv.URL, []string{"order.*"}, nil)
	paused, _ := e.subscribe(t, "store-pause", pausedRecv.URL, []string{"order.*"}, nil)
	// The first retry waits an hour for the deleted one's endpoint, 2 s
	// for the paused one's (its subscription is paused before then).
	e.run(t, Config{RetrySchedule: []time.Duration{0, 2 * time.Second, time.Hour, time.Hour}, BreakerTrips: 1000})
	e.produce(t, append(goodEvents(t, "store-del", 6), goodEvents(t, "store-pause", 3)...)...)
	waitRequests(t, pausedRecv, 3, "the paused subscription's first attempts")
	paused.IsActive = false
	if _, err := e.store.UpsertSubscription(ctx, paused); err != nil {
		t.Fatal(err)
	}
	type rowState struct {
		attempts int
		updated  time.Time
		claimed  *time.Time
	}
	snapshot := func() map[string]rowState {
		rows, err := e.store.Pool().Query(ctx, `SELECT delivery_id::text, attempt_number, updated_at, claimed_until FROM webhook_deliveries
			WHERE subscription_id = $1`, paused.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]rowState{}
		for rows.Next() {
			var id string
			var s rowState
			if err := rows.Scan(&id, &s.attempts, &s.updated, &s.claimed); err != nil {
				t.Fatal(err)
			}
			out[id] = s
		}
		return out
	}
	eventually(t, 10*time.Second, "the paused subscription's first outcomes recorded", func() error {
		for _, s := range snapshot() {
			if s.attempts != 1 || s.claimed != nil {
				return fmt.Errorf("%+v", s)
			}
		}
		return nil
	})
	held := snapshot()

	// Deleted while its deliveries wait: three due now, three an hour out.
	waitRequests(t, deletedRecv, 6, "the deleted subscription's first attempts")
	eventually(t, 10*time.Second, "first outcomes recorded", func() error {
		var n int
		err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'FAILED'
			AND next_retry_at > now() + interval '50 minutes'`, deleted.ID).Scan(&n)
		if err != nil || n != 6 {
			return fmt.Errorf("%d of 6 waiting an hour: %v", n, err)
		}
		return nil
	})
	sentBefore := len(deletedRecv.requests())
	if _, err := e.store.DeactivateSubscription(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Pool().Exec(ctx, `UPDATE webhook_deliveries SET next_retry_at = now() WHERE delivery_id IN
		(SELECT delivery_id FROM webhook_deliveries WHERE subscription_id = $1 LIMIT 3)`, deleted.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "every waiting delivery of the deleted subscription ended with the reason", func() error {
		var ended int
		err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'DEAD_LETTERED'
			AND next_retry_at IS NULL AND last_error LIKE 'the subscription was deleted%'`, deleted.ID).Scan(&ended)
		if err != nil || ended != 6 {
			return fmt.Errorf("%d of 6 ended: %v", ended, err)
		}
		return nil
	})
	if n, err := e.store.DueCount(ctx); err != nil || n != 0 {
		t.Fatalf("dispatcher_due_deliveries would read %d (%v), want 0", n, err)
	}
	if n := len(deletedRecv.requests()); n != sentBefore {
		t.Fatalf("the deleted subscription's endpoint got %d requests after its deletion", n-sentBefore)
	}
	stats, err := e.store.SubscriptionStatsAll(ctx)
	if st := stats[deleted.ID]; err != nil || st.DeadLettered != 6 || !strings.Contains(st.LastDeadLetterReason, "deleted") {
		t.Fatalf("stats: %+v %v", st, err)
	}
	eventually(t, 20*time.Second, "the dead-letter notices published", func() error {
		if n, err := e.store.PendingNotices(ctx); err != nil || n != 0 {
			return fmt.Errorf("%d notices waiting: %v", n, err)
		}
		return nil
	})
	dead := e.readTopic(t, "webhook.dead_lettered", 6)
	if !strings.Contains(string(dead[0].Value), "the subscription was deleted") {
		t.Fatalf("notice %s", dead[0].Value)
	}

	// Paused the whole time (retries were due after 2 s): untouched.
	if now := snapshot(); fmt.Sprint(now) != fmt.Sprint(held) {
		t.Fatalf("a paused subscription's rows were written:\nbefore %v\nafter  %v", held, now)
	}
	if n := len(pausedRecv.requests()); n != 3 {
		t.Fatalf("the paused subscription's endpoint got %d requests while paused", n)
	}
	pausedRecv.set(http.StatusOK, 0)
	paused.IsActive = true
	if _, err := e.store.UpsertSubscription(ctx, paused); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "re-activated, its deliveries are delivered", func() error {
		var n int
		err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'DELIVERED'
			AND attempt_number = 2`, paused.ID).Scan(&n)
		if err != nil || n != 3 {
			return fmt.Errorf("%d of 3: %v", n, err)
		}
		return nil
	})
}

func TestDeletedConnectorsEndTheirWaitingEvents(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	ebay := marketplacetest.NewEbay("ebay-app", "ebay-cert", "v^1.1#refresh")
	t.Cleanup(ebay.Close)
	ebay.SetUnavailable(true)
	configID := e.connector(t, "ebay", "store-c", []string{"inventory.updated"}, map[string]any{"endpoint": ebay.URL},
		map[string]string{"api-key": "ebay-app", "api-secret": "ebay-cert", "refresh-token": "v^1.1#refresh"}, time.Hour)
	slow := fastConnectors
	slow.RetrySchedule = []time.Duration{0, time.Hour}
	e.run(t, Config{Connectors: slow})
	m, eventID := envelopeMessage(t, "store-c", "inventory.updated", map[string]any{"sku": "SKU-1", "quantity": 1})
	e.produce(t, m)
	eventually(t, 20*time.Second, "the event waits an hour for its retry", func() error {
		status, attempts, _, err := e.store.ConnectorDeliveryStatus(ctx, configID, eventID)
		if err != nil || status != "FAILED" || attempts != 1 {
			return fmt.Errorf("%s %d %v", status, attempts, err)
		}
		return nil
	})
	if _, err := e.store.DeactivateConnectorConfig(ctx, configID); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the deleted connector's event ended with the reason", func() error {
		status, _, lastError, err := e.store.ConnectorDeliveryStatus(ctx, configID, eventID)
		if err != nil || status != "DEAD_LETTERED" || !strings.HasPrefix(lastError, "the connector was deleted") {
			return fmt.Errorf("%s %q %v", status, lastError, err)
		}
		return nil
	})
}

func TestCircuitStateOnTheStatusAndGaugeFollowsTheBreaker(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	recv.set(http.StatusBadGateway, 0)
	sub, _ := e.subscribe(t, "store-cb", recv.URL, []string{"order.*"}, nil)
	d := e.run(t, Config{BreakerTrips: 3, BreakerOpen: 500 * time.Millisecond,
		RetrySchedule: []time.Duration{0, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, time.Hour}})
	var msgs []kafka.Message
	for i := range 5 {
		m, _ := envelopeMessage(t, "store-cb", "order.placed", map[string]any{"n": i})
		msgs = append(msgs, m)
	}
	e.produce(t, msgs...)
	circuit := func(want string, gauge float64) func() error {
		return func() error {
			stats, err := e.store.SubscriptionStatsAll(context.Background())
			if st := stats[sub.ID]; err != nil || st.CircuitState != want || testutil.ToFloat64(d.metrics.OpenCircuits) != gauge {
				return fmt.Errorf("state %q, gauge %v (%v)", st.CircuitState, testutil.ToFloat64(d.metrics.OpenCircuits), err)
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "the breaker opens, and the status and gauge say so", circuit("open", 1))
	recv.set(http.StatusOK, 0)
	eventually(t, 20*time.Second, "the endpoint healed: closed on the status, 0 on the gauge", circuit("closed", 0))
	eventually(t, 20*time.Second, "every delivery made it", func() error {
		stats, err := e.store.SubscriptionStatsAll(context.Background())
		if st := stats[sub.ID]; err != nil || st.Delivered != 5 {
			return fmt.Errorf("%d delivered (%v)", st.Delivered, err)
		}
		return nil
	})
}

func TestShutdownReleasesWhatItDidNotStart(t *testing.T) {
	e := startEnv(t)
	recv := newReceiver(t)
	recv.set(http.StatusOK, time.Second)
	e.subscribe(t, "store-s", recv.URL, []string{"order.*"}, func(s *store.Subscription) { s.MaxConcurrency = 1 })
	stop := e.runStoppable(t, Config{Workers: 1})
	e.produce(t, goodEvents(t, "store-s", 6)...)
	waitRequests(t, recv, 1, "the first attempt in flight")
	stopped := time.Now()
	if err := stop(); err != nil { // SIGTERM: five deliveries are claimed but not started
		t.Fatal(err)
	}
	if took := time.Since(stopped); took > 5*time.Second {
		t.Fatalf("shutdown took %v: it attempted what it had not started", took)
	}
	var held int
	if err := e.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries
		WHERE status IN ('PENDING', 'FAILED') AND claimed_until > now()`).Scan(&held); err != nil || held != 0 {
		t.Fatalf("%d deliveries still claimed by the stopped replica (%v)", held, err)
	}
	// With a 5-minute lease, only the release lets another replica start now.
	e.run(t, Config{Workers: 4})
	waitRequests(t, recv, 6, "the rest delivered by the next replica at once")
}

func TestASigningSecretMissingFromVaultIsRecordedAndClears(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	recv := newReceiver(t)
	sub, secret := e.subscribe(t, "store-v", recv.URL, []string{"order.*"}, nil)
	if err := e.vault.Delete(ctx, "webhook/"+sub.ID.String()+"/secret"); err != nil {
		t.Fatal(err)
	}
	e.run(t, Config{})
	e.produce(t, goodEvents(t, "store-v", 3)...)
	eventually(t, 10*time.Second, "the missing secret recorded for the manager", func() error {
		stats, err := e.store.SubscriptionStatsAll(ctx)
		if st := stats[sub.ID]; err != nil || st.SecretMissingSince == nil || !strings.Contains(st.LastError, "secret not found") {
			return fmt.Errorf("%+v %v", st, err)
		}
		return nil
	})
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("%d requests sent unsigned", n)
	}
	// The manager puts it back.
	if _, err := e.vault.Put(ctx, "webhook/"+sub.ID.String()+"/secret", map[string]string{"secret": secret}); err != nil {
		t.Fatal(err)
	}
	waitRequests(t, recv, 3, "delivered once the secret is back")
	eventually(t, 10*time.Second, "the mark cleared, no attempt spent while it was missing", func() error {
		stats, err := e.store.SubscriptionStatsAll(ctx)
		var firstAttempts int
		if err == nil {
			err = e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND status = 'DELIVERED'
				AND attempt_number = 1`, sub.ID).Scan(&firstAttempts)
		}
		if st := stats[sub.ID]; err != nil || st.SecretMissingSince != nil || firstAttempts != 3 {
			return fmt.Errorf("%+v, %d delivered on their first attempt: %v", st, firstAttempts, err)
		}
		return nil
	})
}
