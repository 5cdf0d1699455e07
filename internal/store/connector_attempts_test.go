package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Every attempt at a marketplace is recorded, not only the last: a
// connector delivery that fails twice and then succeeds has three attempt
// rows, in order, each with its outcome, the marketplace's answer where
// there was one, its error bounded and storable.
func TestEveryConnectorAttemptIsRecorded(t *testing.T) {
	st, ctx := hostileStore(t)
	cfg := activeConnector(t, st, "store-a", "ebay")
	// Two deliveries share every batch: one statement writes both's attempts.
	var news []store.NewConnectorDelivery
	for _, sku := range []string{"A", "B"} {
		news = append(news, store.NewConnectorDelivery{ID: store.NewID(), ConfigID: cfg.ID, EventID: uuid.New(), StoreID: "store-a",
			EventType: "inventory.updated", Payload: []byte(`{"sku":"` + sku + `"}`), EntityKey: "sku:" + sku})
	}
	if err := st.InsertConnectorDeliveries(ctx, news); err != nil {
		t.Fatal(err)
	}
	long := "refused \x00 " + strings.Repeat("é", store.AttemptError)
	steps := []struct {
		status string
		http   int
		answer string
		err    string
	}{
		{store.DeliveryFailed, 503, "busy \xff", "POST bulk answered 503: busy"},
		{store.DeliveryFailed, 0, "", long},
		{store.DeliveryDelivered, 0, "", ""},
	}
	var eventTimes [2]time.Time
	for i, step := range steps {
		claimed, err := st.ClaimConnectorDeliveries(ctx, 10, time.Minute)
		if err != nil || len(claimed) != 2 {
			t.Fatalf("claim %d: %+v, %v", i+1, claimed, err)
		}
		started := time.Now().Add(time.Duration(i) * time.Second)
		var outcomes []store.ConnectorOutcome
		for j, c := range claimed {
			eventTimes[j] = c.EventTime
			a := &store.ConnectorAttempt{Attempt: store.Attempt{StartedAt: started, Duration: 1500 * time.Millisecond, Replica: "dispatcher-0"}}
			if step.http != 0 {
				a.HTTPStatus, a.Answer = &step.http, &step.answer
			}
			o := store.ConnectorOutcome{DeliveryID: c.ID, EventTime: c.EventTime, ConfigID: cfg.ID, Status: step.status, Attempts: c.Attempts + 1,
				Error: step.err, Attempted: true, ClaimToken: c.ClaimToken, Attempt: a}
			if step.status == store.DeliveryFailed {
				o.RetryIn = new(time.Duration) // due again at once
			}
			outcomes = append(outcomes, o)
		}
		if err := st.RecordConnectorOutcomes(ctx, outcomes, nil); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		// last_error keeps the whole error, as before; the attempt its start.
		if _, _, lastError, err := st.ConnectorDeliveryStatus(ctx, cfg.ID, news[0].EventID); err != nil || (i == 1 && len(lastError) <= store.AttemptError) {
			t.Errorf("after attempt %d, last error of %d bytes (%v); want it whole", i+1, len(lastError), err)
		}
	}
	for j, d := range news {
		attempts, err := st.ConnectorDeliveryAttempts(ctx, d.ID, eventTimes[j])
		if err != nil {
			t.Fatal(err)
		}
		if len(attempts) != 3 {
			t.Fatalf("delivery %d: %d attempts recorded, want 3: %+v", j, len(attempts), attempts)
		}
		for i, a := range attempts {
			want := steps[i]
			if a.Number != i+1 || a.Status != want.status || a.Replica != "dispatcher-0" || a.Duration != 1500*time.Millisecond {
				t.Errorf("delivery %d attempt %d: %+v; want number %d, %s, the replica, 1.5s", j, i+1, a, i+1, want.status)
			}
			if i > 0 && !a.StartedAt.After(attempts[i-1].StartedAt) {
				t.Errorf("attempt %d started %v, not after the one before (%v)", i+1, a.StartedAt, attempts[i-1].StartedAt)
			}
		}
		first, second, last := attempts[0], attempts[1], attempts[2]
		if first.HTTPStatus == nil || *first.HTTPStatus != 503 || first.ResponseExcerpt == nil || *first.ResponseExcerpt != "busy \uFFFD" ||
			first.Error != "POST bulk answered 503: busy" {
			t.Errorf("first attempt: status %v, excerpt %v, error %q; want 503, the answer made storable, the error", first.HTTPStatus,
				first.ResponseExcerpt, first.Error)
		}
		if second.HTTPStatus != nil || second.ResponseExcerpt != nil || len(second.Error) > store.AttemptError+8 ||
			strings.Contains(second.Error, "\x00") || !strings.HasPrefix(second.Error, "refused ") || !strings.HasSuffix(second.Error, "é") {
			t.Errorf("second attempt: status %v, excerpt %v, error of %d bytes (%.20q); want no answer, the error bounded on a character, storable",
				second.HTTPStatus, second.ResponseExcerpt, len(second.Error), second.Error)
		}
		if last.Error != "" || last.HTTPStatus != nil {
			t.Errorf("the delivered attempt: %+v", last)
		}
	}
}

// Outcomes without an adapter call (events that only waited, work ended as
// abandoned) record no attempt; an attempt whose claim was lost meanwhile
// is recorded all the same: the marketplace saw it.
func TestConnectorAttemptsOnlyForCallsMade(t *testing.T) {
	st, ctx := hostileStore(t)
	cfg := activeConnector(t, st, "store-b", "ebay")
	d := store.NewConnectorDelivery{ID: store.NewID(), ConfigID: cfg.ID, EventID: uuid.New(), StoreID: "store-b", EventType: "product.updated",
		Payload: []byte(`{"sku":"X"}`)}
	if err := st.InsertConnectorDeliveries(ctx, []store.NewConnectorDelivery{d}); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.ClaimConnectorDeliveries(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatal(claimed, err)
	}
	c := claimed[0]
	wait := time.Duration(0)
	if err := st.RecordConnectorOutcomes(ctx, []store.ConnectorOutcome{{DeliveryID: c.ID, EventTime: c.EventTime, ConfigID: cfg.ID,
		Status: store.DeliveryPending, RetryIn: &wait, Error: "waits for its rate", ClaimToken: c.ClaimToken}}, nil); err != nil {
		t.Fatal(err)
	}
	if attempts, err := st.ConnectorDeliveryAttempts(ctx, c.ID, c.EventTime); err != nil || len(attempts) != 0 {
		t.Fatalf("attempts of an event that only waited: %+v, %v", attempts, err)
	}
	// Claimed again; the outcome is written under the old, lost claim.
	if again, err := st.ClaimConnectorDeliveries(ctx, 10, time.Minute); err != nil || len(again) != 1 {
		t.Fatal(again, err)
	}
	if err := st.RecordConnectorOutcomes(ctx, []store.ConnectorOutcome{{DeliveryID: c.ID, EventTime: c.EventTime, ConfigID: cfg.ID,
		Status: store.DeliveryDelivered, Attempts: 1, Attempted: true, ClaimToken: c.ClaimToken,
		Attempt: &store.ConnectorAttempt{Attempt: store.Attempt{StartedAt: time.Now(), Replica: "dispatcher-1"}}}}, nil); err != nil {
		t.Fatal(err)
	}
	attempts, err := st.ConnectorDeliveryAttempts(ctx, c.ID, c.EventTime)
	if err != nil || len(attempts) != 1 || attempts[0].Status != store.DeliveryDelivered || attempts[0].Replica != "dispatcher-1" {
		t.Fatalf("attempts: %+v, %v; want the fenced-off call recorded", attempts, err)
	}
	if status, _, _, err := st.ConnectorDeliveryStatus(ctx, cfg.ID, d.EventID); err != nil || status != store.DeliveryPending {
		t.Fatalf("status %s (%v): the fenced-off outcome landed", status, err)
	}
}
