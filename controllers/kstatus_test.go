package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/store"
)

// countingRecorder counts the Events raised, by reason, and passes them on
// to the API server: "once" is then a count, not a guess about aggregation.
type countingRecorder struct {
	events.EventRecorder
	mu sync.Mutex
	n  map[string]int
}

func (r *countingRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.mu.Lock()
	r.n[reason]++
	r.mu.Unlock()
	r.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (r *countingRecorder) count(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

// deliveryBed plays the dispatcher for one subscription: deliveries
// written through the store, outcomes and stats recorded as its record
// stage does, and a reporter whose passes the test runs.
type deliveryBed struct {
	h        *harness
	subID    uuid.UUID
	at       time.Time
	recorder *countingRecorder
	reporter *controllers.StatusReporter
}

// newDeliveryBed starts a manager with a Ready subscription called name.
func newDeliveryBed(t *testing.T, name string) (*harness, *deliveryBed) {
	t.Helper()
	h := startManager(t, harnessOptions{})
	if err := h.client.Create(context.Background(), newSubscription(h.namespace, name)); err != nil {
		t.Fatal(err)
	}
	sub := h.waitReady(t, name)
	rec := &countingRecorder{EventRecorder: h.recorder, n: map[string]int{}}
	return h, &deliveryBed{h: h, subID: uuid.MustParse(string(sub.UID)), at: store.PartitionTime(time.Now()), recorder: rec,
		reporter: &controllers.StatusReporter{Client: h.client, Store: h.store, Recorder: rec, Log: logr.Discard()}}
}

func (b *deliveryBed) insert(t *testing.T, n int) []uuid.UUID {
	t.Helper()
	var news []store.NewDelivery
	for range n {
		news = append(news, store.NewDelivery{ID: uuid.New(), SubscriptionID: b.subID, EventID: uuid.New(), StoreID: "store-1042",
			EventType: "order.placed", Payload: []byte(`{}`), EventTime: b.at})
	}
	ids, err := b.h.store.InsertDeliveries(context.Background(), news, store.NewClaim(time.Minute))
	if err != nil || len(ids) != n {
		t.Fatalf("insert deliveries: %v (%d inserted)", err, len(ids))
	}
	return ids
}

// attempt records one attempt of each delivery ending in status.
func (b *deliveryBed) attempt(t *testing.T, status string, ids ...uuid.UUID) {
	t.Helper()
	code, errText := 200, ""
	if status != store.DeliveryDelivered {
		code, errText = 503, "the endpoint answered 503 Service Unavailable"
	}
	retry := time.Hour
	delta := store.StatsDelta{SubscriptionID: b.subID, LastAttemptAt: time.Now(), LastHTTPStatus: &code, LastError: errText}
	var outcomes []store.Outcome
	for _, id := range ids {
		o := store.Outcome{DeliveryID: id, EventTime: b.at, Status: status, Attempts: 1, HTTPStatus: &code, Error: errText}
		switch status {
		case store.DeliveryDelivered:
			delta.Delivered++
		case store.DeliveryFailed:
			o.RetryIn = &retry
			delta.FailedAttempts++
			delta.TrailingFailures++
		case store.DeliveryDeadLettered:
			delta.FailedAttempts++
			delta.TrailingFailures++
			delta.DeadLettered++
			delta.DeadLetterReason = "5 attempts failed; last: " + errText
		}
		outcomes = append(outcomes, o)
	}
	if err := b.h.store.RecordOutcomesAndStats(context.Background(), outcomes, []store.StatsDelta{delta}); err != nil {
		t.Fatal(err)
	}
}

func (b *deliveryBed) report(t *testing.T) {
	t.Helper()
	if err := b.reporter.ReportDeliveries(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The first failed attempt raises one Warning, hours before a dead letter
// would; later failures raise none; the next success one Normal Event.
func TestDeliveriesFailingRaiseOneWarningAndRecoveringOneNormalEvent(t *testing.T) {
	h, b := newDeliveryBed(t, "flaky")
	ids := b.insert(t, 2)

	b.attempt(t, store.DeliveryFailed, ids[0])
	b.report(t)
	h.waitEvent(t, "flaky", "DeliveriesFailing", "1 attempts in a row failed; last: the endpoint answered 503")
	sub := h.get(t, "flaky")
	if d := sub.Status.Delivery; d == nil || d.DeadLettered != 0 || d.DeadLetteredTotal != 0 || d.Failed != 1 {
		t.Fatalf("the Warning comes with the first failure, before any dead letter: %+v", d)
	}
	if c := meta.FindStatusCondition(sub.Status.Conditions, controllers.ConditionHealthy); c == nil || c.Reason != controllers.ReasonDeliveriesFailing {
		t.Fatalf("Healthy: %+v", c)
	}
	if meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionStalled) != nil {
		t.Fatal("failing deliveries are retried: not Stalled")
	}

	// More failures, and passes with nothing new: still the one Warning.
	b.attempt(t, store.DeliveryFailed, ids[1])
	b.attempt(t, store.DeliveryFailed, ids[0])
	b.report(t)
	b.report(t)
	if c := meta.FindStatusCondition(h.get(t, "flaky").Status.Conditions, controllers.ConditionHealthy); !strings.Contains(c.Message, "3 attempts in a row") {
		t.Fatalf("the failures reached the status: %+v", c)
	}
	if n := b.recorder.count("DeliveriesFailing"); n != 1 {
		t.Fatalf("%d DeliveriesFailing Events, want 1", n)
	}

	b.attempt(t, store.DeliveryDelivered, ids[0])
	b.report(t)
	b.report(t)
	h.waitEvent(t, "flaky", "DeliveriesRecovered", "the last delivery succeeded")
	if n, m := b.recorder.count("DeliveriesFailing"), b.recorder.count("DeliveriesRecovered"); n != 1 || m != 1 {
		t.Fatalf("%d DeliveriesFailing and %d DeliveriesRecovered Events, want 1 each", n, m)
	}
	if c := meta.FindStatusCondition(h.get(t, "flaky").Status.Conditions, controllers.ConditionHealthy); c.Status != metav1.ConditionTrue {
		t.Fatalf("Healthy after the success: %+v", c)
	}
}

// DEAD counts the dead letters there are now: a re-trigger lowers it, the
// re-triggered delivery's success keeps it lowered; the total only grows.
func TestDeadCountsWhatIsDeadLetteredNow(t *testing.T) {
	h, b := newDeliveryBed(t, "dead")
	ctx := context.Background()
	ids := b.insert(t, 3)
	b.attempt(t, store.DeliveryDeadLettered, ids...)
	b.report(t)
	dead := func(now, total int64) {
		t.Helper()
		d := h.get(t, "dead").Status.Delivery
		if d == nil || d.DeadLettered != now || d.DeadLetteredTotal != total {
			t.Fatalf("status.delivery: %+v; want deadLettered %d, deadLetteredTotal %d", d, now, total)
		}
	}
	dead(3, 3)

	// One by id, as `integration-operator retrigger --delivery-id` does.
	if ok, err := h.store.RequeueDelivery(ctx, ids[0]); err != nil || !ok {
		t.Fatalf("requeue: %v %v", ok, err)
	}
	b.report(t)
	dead(2, 3)
	b.attempt(t, store.DeliveryDelivered, ids[0])
	b.report(t)
	dead(2, 3)
	if ok, err := h.store.RequeueDelivery(ctx, ids[0]); err != nil || ok {
		t.Fatalf("a delivered delivery is no dead letter to re-queue: %v %v", ok, err)
	}

	// The rest by annotation.
	sub := h.get(t, "dead")
	update(t, sub, func() {
		sub.Annotations = map[string]string{integrationsv1.RetriggerDeadLettersAnnotation: "endpoint-fixed"}
	})
	eventually(t, 30*time.Second, "the annotation re-queued the dead letters", func() error {
		if got := h.get(t, "dead").Status.LastRetrigger; got != "endpoint-fixed" {
			return fmt.Errorf("lastRetrigger %q", got)
		}
		return nil
	})
	b.report(t)
	dead(0, 3)

	// The Dead column reads what is dead-lettered now.
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := h.client.Get(ctx, client.ObjectKey{Name: "webhooksubscriptions.integrations.ss3.dev"}, crd); err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	columns, _, _ := unstructured.NestedSlice(versions[0].(map[string]any), "additionalPrinterColumns")
	path := ""
	for _, c := range columns {
		if c := c.(map[string]any); c["name"] == "Dead" {
			path, _ = c["jsonPath"].(string)
		}
	}
	if path != ".status.delivery.deadLettered" {
		t.Fatalf("the Dead column reads %q", path)
	}
}

// A referenced Secret that does not exist stalls the resource (Flux and
// Argo CD then report it failed at once); creating it heals it.
func TestAMissingReferencedSecretStallsUntilItIsCreated(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	sub := newSubscription(h.namespace, "imports")
	sub.Spec.SigningSecretRef = &integrationsv1.SecretKeyReference{Name: "partner-hmac", Key: "hmac"}
	cc := &integrationsv1.ConnectorConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "stripe", Namespace: h.namespace},
		Spec: integrationsv1.ConnectorConfigSpec{StoreID: "store-1042", ConnectorType: integrationsv1.ConnectorStripe, DisplayName: "Stripe",
			CredentialsSecretRef: integrationsv1.ConnectorCredentialsReference{Name: "stripe-endpoint"}},
	}
	for _, obj := range []client.Object{sub, cc} {
		if err := h.client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	sub = h.waitCondition(t, "imports", integrationsv1.ConditionStalled, metav1.ConditionTrue, controllers.ReasonSecretRefNotFound)
	if c := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionStalled); !strings.Contains(c.Message, "partner-hmac") ||
		c.ObservedGeneration != sub.Generation {
		t.Fatalf("Stalled should name the Secret, at the spec's generation: %+v", c)
	}
	if c := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionReady); c.Status != metav1.ConditionFalse {
		t.Fatalf("Ready while Stalled: %+v", c)
	}
	h.waitConnector(t, "stripe", integrationsv1.ConditionStalled, metav1.ConditionTrue, controllers.ReasonCredentialsNotFound)

	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "partner-hmac", Namespace: h.namespace}, Data: map[string][]byte{"hmac": []byte("a-partner-chosen-hmac-key")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "stripe-endpoint", Namespace: h.namespace}, Data: map[string][]byte{"api-secret": []byte("whsec_test_endpoint_secret")}},
	} {
		if err := h.client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	sub = h.waitReady(t, "imports")
	if c := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionStalled); c != nil {
		t.Fatalf("Stalled after the Secret was created: %+v", c)
	}
	cc = h.waitConnector(t, "stripe", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	if c := meta.FindStatusCondition(cc.Status.Conditions, integrationsv1.ConditionStalled); c != nil {
		t.Fatalf("connector Stalled after its Secret was created: %+v", c)
	}
}

// An endpoint that answers 410 Gone will not take deliveries again unless
// someone acts: the reporter stalls the subscription and holds Ready False
// (the reconciler's passes keep it so); a later success heals both.
func TestAnEndpointGoneStallsTheSubscriptionUntilADeliverySucceeds(t *testing.T) {
	h, b := newDeliveryBed(t, "gone")
	ctx := context.Background()
	ids := b.insert(t, 1)
	code, retry := 410, time.Hour
	if err := h.store.RecordOutcomesAndStats(ctx,
		[]store.Outcome{{DeliveryID: ids[0], EventTime: b.at, Status: store.DeliveryFailed, Attempts: 1, HTTPStatus: &code, RetryIn: &retry,
			Error: "the endpoint answered 410 Gone"}},
		[]store.StatsDelta{{SubscriptionID: b.subID, FailedAttempts: 1, TrailingFailures: 1, LastAttemptAt: time.Now(), LastHTTPStatus: &code,
			LastError: "the endpoint answered 410 Gone"}}); err != nil {
		t.Fatal(err)
	}
	b.report(t)
	sub := h.get(t, "gone")
	stalled := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionStalled)
	ready := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionReady)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != controllers.ReasonEndpointGone ||
		ready.Status != metav1.ConditionFalse || ready.Reason != controllers.ReasonEndpointGone {
		t.Fatalf("Stalled %+v, Ready %+v", stalled, ready)
	}
	// A reconcile (an annotation wakes it) agrees with the reporter.
	reconciles := reconcileCount(t)
	update(t, sub, func() { sub.Annotations = map[string]string{"example.com/touch": "1"} })
	eventually(t, 10*time.Second, "a reconcile after the touch", func() error {
		if n := reconcileCount(t); n <= reconciles {
			return fmt.Errorf("%v reconciles", n)
		}
		return nil
	})
	if g := h.get(t, "gone"); meta.FindStatusCondition(g.Status.Conditions, integrationsv1.ConditionReady).Status != metav1.ConditionFalse ||
		meta.FindStatusCondition(g.Status.Conditions, integrationsv1.ConditionStalled) == nil {
		t.Fatalf("the reconciler undid the stall: %+v", g.Status.Conditions)
	}

	b.attempt(t, store.DeliveryDelivered, ids[0])
	// Pass after pass, as the manager's reporter runs: a patch that lost to
	// the reconciler's write (the touch above) is made again by the next.
	eventually(t, 30*time.Second, "Ready and no longer Stalled after a success", func() error {
		b.report(t)
		g := h.get(t, "gone")
		if c := meta.FindStatusCondition(g.Status.Conditions, integrationsv1.ConditionStalled); c != nil {
			return fmt.Errorf("Stalled %+v", c)
		}
		if c := meta.FindStatusCondition(g.Status.Conditions, integrationsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready %+v", c)
		}
		return nil
	})
}
