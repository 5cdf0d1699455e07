package deliveryapi

import (
	"testing"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ss3dev/integration-operator/internal/store"
)

func listOptions(t *testing.T, fieldSel, labelSel string) *metainternalversion.ListOptions {
	t.Helper()
	opts := &metainternalversion.ListOptions{}
	var err error
	if fieldSel != "" {
		if opts.FieldSelector, err = fields.ParseSelector(fieldSel); err != nil {
			t.Fatal(err)
		}
	}
	if labelSel != "" {
		if opts.LabelSelector, err = labels.Parse(labelSel); err != nil {
			t.Fatal(err)
		}
	}
	return opts
}

func TestSelectorsBecomeTheStoresFilter(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	q, err := parseQuery(listOptions(t, "spec.subscription=orders,status.phase=DeadLettered,spec.eventType=order.placed,since=2h,until=2026-12-03T11:30:00Z", ""),
		fieldSubscription, labelSubscription, now)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	f := q.filter([]owner{{name: "orders", id: id}})
	if q.owner != "orders" || f.Status != store.DeliveryDeadLettered || f.EventType != "order.placed" || len(f.Owners) != 1 || f.Owners[0] != id ||
		!f.Since.Equal(now.Add(-2*time.Hour)) || !f.Until.Equal(now.Add(-30*time.Minute)) || f.Limit != defaultPage {
		t.Fatalf("query %+v, filter %+v", q, f)
	}
	q, err = parseQuery(listOptions(t, "", "integrations.ss3.dev/subscription=orders,integrations.ss3.dev/phase=Retrying"), fieldSubscription, labelSubscription, now)
	if err != nil || q.owner != "orders" || q.filter(nil).Status != store.DeliveryFailed {
		t.Fatalf("labels: %+v, %v", q, err)
	}
}

func TestSelectorsThisServerCannotAnswerAreRefused(t *testing.T) {
	for _, c := range []struct{ fields, labels string }{
		{fields: "status.phase=Lost"},
		{fields: "spec.subscription!=orders"},
		{fields: "since=yesterday"},
		{fields: "spec.connector=amazon"}, // a webhook list's owner is a subscription
		{labels: "team=payments"},
		{labels: "integrations.ss3.dev/phase in (Delivered,DeadLettered)"},
	} {
		_, err := parseQuery(listOptions(t, c.fields, c.labels), fieldSubscription, labelSubscription, time.Now())
		if !apierrors.IsBadRequest(err) {
			t.Errorf("fields %q labels %q: %v, want a bad request", c.fields, c.labels, err)
		}
	}
}

func TestContinueTokensRoundTripAndRejectForgeries(t *testing.T) {
	d := store.LoggedDelivery{ID: uuid.New(), EventTime: time.Date(2026, 12, 1, 8, 0, 0, 123456000, time.UTC)}
	opts := &metainternalversion.ListOptions{Continue: encodeContinue(d), Limit: 5000}
	q, err := parseQuery(opts, fieldSubscription, labelSubscription, time.Now())
	if err != nil || q.after == nil || q.after.ID != d.ID || !q.after.EventTime.Equal(d.EventTime) || q.limit != maxPage {
		t.Fatalf("%+v, %v", q, err)
	}
	for _, forged := range []string{"!!", "bm90LWEtdG9rZW4", encodeContinue(d)[:10]} {
		if _, err := parseQuery(&metainternalversion.ListOptions{Continue: forged}, fieldSubscription, labelSubscription, time.Now()); !apierrors.IsBadRequest(err) {
			t.Errorf("token %q: %v", forged, err)
		}
	}
}

func TestPhasesOfRows(t *testing.T) {
	for _, c := range []struct {
		status   string
		attempts int
		phase    string
	}{
		{store.DeliveryPending, 0, "Pending"}, {store.DeliveryFailed, 2, "Retrying"}, {store.DeliveryPending, 1, "Retrying"},
		{store.DeliveryDelivered, 3, "Delivered"}, {store.DeliveryDeadLettered, 8, "DeadLettered"},
	} {
		if got := phaseOf(store.LoggedDelivery{Status: c.status, Attempts: c.attempts}); got != c.phase {
			t.Errorf("%s after %d attempts: %s, want %s", c.status, c.attempts, got, c.phase)
		}
	}
}
