package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Every attempt is recorded, not only the last: a delivery failing twice
// and then delivered has three attempts, in order, each with its answer.
func TestEveryAttemptIsRecorded(t *testing.T) {
	e := startEnv(t)
	var calls atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "boom \x00 "+strings.Repeat("x", 3*store.AttemptExcerpt))
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "busy")
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	t.Cleanup(recv.Close)
	sub, _ := e.subscribe(t, "store-a", recv.URL, []string{"order.*"}, nil)
	schedule := []time.Duration{0, 50 * time.Millisecond, 50 * time.Millisecond, time.Second, time.Second}
	e.run(t, Config{RetrySchedule: schedule, Replica: "dispatcher-7f9c-abcde"})
	msg, eventID := envelopeMessage(t, "store-a", "order.placed", map[string]any{"orderId": "o-1"})
	e.produce(t, msg)

	ctx := context.Background()
	id, eventTime := e.delivered(t, "webhook_deliveries", "subscription_id", sub.ID, eventID)
	attempts, err := e.store.DeliveryAttempts(ctx, id, eventTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 3 {
		t.Fatalf("%d attempts recorded, want 3: %+v", len(attempts), attempts)
	}
	for i, want := range []int{500, 503, 200} {
		a := attempts[i]
		if a.Number != i+1 || a.HTTPStatus == nil || *a.HTTPStatus != want || a.Replica != "dispatcher-7f9c-abcde" || a.StartedAt.IsZero() {
			t.Errorf("attempt %d: %+v (status %v), want number %d, status %d, the replica's name", i, a, a.HTTPStatus, i+1, want)
		}
		if i > 0 && !a.StartedAt.After(attempts[i-1].StartedAt) {
			t.Errorf("attempt %d started %v, not after the one before (%v)", i+1, a.StartedAt, attempts[i-1].StartedAt)
		}
	}
	first := attempts[0]
	if first.ResponseExcerpt == nil || len(*first.ResponseExcerpt) > store.AttemptExcerpt+8 || strings.Contains(*first.ResponseExcerpt, "\x00") ||
		!strings.HasPrefix(*first.ResponseExcerpt, "boom ") {
		t.Errorf("first attempt's excerpt: %v; want the answer's start, bounded and storable", first.ResponseExcerpt)
	}
	if first.Error != "the endpoint answered 500" || attempts[2].Error != "" {
		t.Errorf("errors %q, %q; want the first's status as its error and none for the last", first.Error, attempts[2].Error)
	}
	if ok := attempts[2].ResponseExcerpt; ok == nil || *ok != "ok" {
		t.Errorf("the delivered attempt's excerpt: %v", ok)
	}
}

// delivered waits for the delivery of eventID to owner (a subscription, a
// connector: the table's column ownerColumn) to be DELIVERED, and returns
// its id and event time.
func (e *env) delivered(t *testing.T, table, ownerColumn string, owner, eventID uuid.UUID) (id uuid.UUID, eventTime time.Time) {
	t.Helper()
	eventually(t, 20*time.Second, "delivered on the third attempt", func() error {
		return e.store.Pool().QueryRow(context.Background(), `SELECT delivery_id, event_time FROM `+table+`
			WHERE `+ownerColumn+` = $1 AND event_id = $2 AND status = 'DELIVERED'`, owner, eventID).Scan(&id, &eventTime)
	})
	return id, eventTime
}

// A replica names itself by its hostname (its pod's name) unless told.
func TestReplicaDefaultsToTheHostname(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	var c Config
	c.defaults()
	if c.Replica != host {
		t.Fatalf("replica %q, want the hostname %q", c.Replica, host)
	}
}

// So is every attempt at a marketplace: a connector delivery failing twice
// and then delivered has three attempts, in order, each with its outcome
// and the marketplace's answer, made storable.
func TestEveryConnectorAttemptIsRecorded(t *testing.T) {
	e := startEnv(t)
	ebay, configID := e.ebayConnector(t, "store-b", []string{"inventory.updated"})
	e.run(t, Config{Connectors: fastConnectors, Replica: "dispatcher-7f9c-fghij"})
	ebay.FailNextWith(2, http.StatusServiceUnavailable, []byte("busy \x00\xff"))
	msg, eventID := envelopeMessage(t, "store-b", "inventory.updated", map[string]any{"sku": "SKU-1", "quantity": 3})
	e.produce(t, msg)

	ctx := context.Background()
	id, eventTime := e.delivered(t, "connector_deliveries", "config_id", configID, eventID)
	attempts, err := e.store.ConnectorDeliveryAttempts(ctx, id, eventTime)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 3 {
		t.Fatalf("%d attempts recorded, want 3: %+v", len(attempts), attempts)
	}
	for i, want := range []string{store.DeliveryFailed, store.DeliveryFailed, store.DeliveryDelivered} {
		a := attempts[i]
		if a.Number != i+1 || a.Status != want || a.Replica != "dispatcher-7f9c-fghij" || a.StartedAt.IsZero() {
			t.Errorf("attempt %d: %+v, want number %d, %s, the replica's name", i+1, a, i+1, want)
		}
		if i > 0 && !a.StartedAt.After(attempts[i-1].StartedAt) {
			t.Errorf("attempt %d started %v, not after the one before (%v)", i+1, a.StartedAt, attempts[i-1].StartedAt)
		}
	}
	for _, a := range attempts[:2] {
		if a.HTTPStatus == nil || *a.HTTPStatus != 503 || a.ResponseExcerpt == nil || !strings.HasPrefix(*a.ResponseExcerpt, "busy ") ||
			strings.Contains(*a.ResponseExcerpt, "\x00") || !strings.Contains(a.Error, "503") {
			t.Errorf("failed attempt %d: status %v, excerpt %v, error %q; want the 503, its answer storable, the error", a.Number,
				a.HTTPStatus, a.ResponseExcerpt, a.Error)
		}
	}
	if last := attempts[2]; last.Error != "" || last.HTTPStatus != nil || last.ResponseExcerpt != nil {
		t.Errorf("the delivered attempt: %+v", last)
	}
}
