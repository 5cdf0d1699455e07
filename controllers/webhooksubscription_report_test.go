package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/store"
)

// The dispatcher's side is played here by writing deliveries and outcomes
// through the store, as its record stage does.
func TestDeliveryHealthReachesTheStatusAndRetriggerRequeues(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "health")); err != nil {
		t.Fatal(err)
	}
	sub := h.waitReady(t, "health")
	subID := uuid.MustParse(string(sub.UID))
	reporter := &controllers.StatusReporter{Client: h.client, Store: h.store, Recorder: h.recorder, Log: logr.Discard()}

	// Three deliveries: one delivered, one dead-lettered after five failures, one pending.
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	var news []store.NewDelivery
	for _, id := range ids {
		news = append(news, store.NewDelivery{ID: id, SubscriptionID: subID, EventID: uuid.New(), StoreID: "store-1042",
			EventType: "order.placed", Payload: []byte(`{}`)})
	}
	if _, err := h.store.InsertDeliveries(ctx, news, store.NewClaim(time.Minute)); err != nil {
		t.Fatal(err)
	}
	s200, s500 := 200, 500
	reason := "5 attempts failed; last: the endpoint answered 500"
	if err := h.store.RecordOutcomesAndStats(ctx,
		[]store.Outcome{
			{DeliveryID: ids[0], Status: store.DeliveryDelivered, Attempts: 1, HTTPStatus: &s200},
			{DeliveryID: ids[1], Status: store.DeliveryDeadLettered, Attempts: 5, HTTPStatus: &s500, Error: "the endpoint answered 500"},
		},
		[]store.StatsDelta{{SubscriptionID: subID, Delivered: 1, FailedAttempts: 5, DeadLettered: 1,
			TrailingFailures: 5, LastAttemptAt: time.Now(), LastHTTPStatus: &s500, LastError: "the endpoint answered 500", DeadLetterReason: reason}},
	); err != nil {
		t.Fatal(err)
	}
	if err := reporter.ReportDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	sub = h.get(t, "health")
	d := sub.Status.Delivery
	if d == nil || d.Delivered != 1 || d.Failed != 5 || d.DeadLettered != 1 || d.Pending != 1 || d.ConsecutiveFailures != 5 ||
		d.LastHTTPStatus != 500 || d.LastAttemptTime == nil || d.LastDeadLetterReason != reason {
		t.Fatalf("status.delivery: %+v", d)
	}
	c := meta.FindStatusCondition(sub.Status.Conditions, controllers.ConditionHealthy)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonDeliveriesFailing || !strings.Contains(c.Message, "5 attempts in a row failed") {
		t.Fatalf("Healthy: %+v", c)
	}
	if r := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionReady); r == nil || r.Status != metav1.ConditionTrue {
		t.Fatalf("the reporter must keep the reconciler's conditions: %+v", sub.Status.Conditions)
	}
	h.waitEvent(t, "health", "DeliveriesDeadLettered", reason)

	// An idle report writes nothing.
	before := h.get(t, "health").ResourceVersion
	if err := reporter.ReportDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	if after := h.get(t, "health").ResourceVersion; after != before {
		t.Fatal("a report with nothing new wrote the status")
	}

	// Re-trigger the dead letters by annotation: same delivery id, pending again, once per value.
	update(t, sub, func() {
		sub.Annotations = map[string]string{integrationsv1.RetriggerDeadLettersAnnotation: "after-fixing-the-endpoint"}
	})
	eventually(t, 30*time.Second, "dead letter re-queued", func() error {
		status, attempts, _, next, err := h.store.GetDelivery(ctx, ids[1])
		if err != nil || status != store.DeliveryPending || attempts != 0 || next == nil {
			return fmt.Errorf("%s %d %v %v", status, attempts, next, err)
		}
		return nil
	})
	eventually(t, 10*time.Second, "status records the re-trigger", func() error {
		if got := h.get(t, "health").Status.LastRetrigger; got != "after-fixing-the-endpoint" {
			return fmt.Errorf("lastRetrigger %q", got)
		}
		return nil
	})
}

// A partition the dispatcher cannot make progress on shows on the
// subscriptions and connectors of the stores its stuck batch carries, and
// only on those, and clears when the batch goes through.
func TestAStalledIntakeShowsOnItsStoresResources(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	stuck := newSubscription(h.namespace, "stuck")
	flowing := newSubscription(h.namespace, "flowing")
	flowing.Spec.StoreID = "store-2077"
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "stripe-endpoint", Namespace: h.namespace},
		Data: map[string][]byte{"api-secret": []byte("whsec_test_endpoint_secret")}}
	connector := &integrationsv1.ConnectorConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "stripe", Namespace: h.namespace},
		Spec: integrationsv1.ConnectorConfigSpec{StoreID: stuck.Spec.StoreID, ConnectorType: integrationsv1.ConnectorStripe, DisplayName: "Stripe",
			CredentialsSecretRef: integrationsv1.ConnectorCredentialsReference{Name: "stripe-endpoint"}},
	}
	for _, obj := range []client.Object{stuck, flowing, creds, connector} {
		if err := h.client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	h.waitReady(t, "stuck")
	h.waitReady(t, "flowing")
	h.waitConnector(t, "stripe", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	reporter := &controllers.StatusReporter{Client: h.client, Store: h.store, Recorder: h.recorder, Log: logr.Discard()}
	report := func() {
		t.Helper()
		if err := reporter.ReportDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
		if err := reporter.ReportConnectors(ctx); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Now().Add(-time.Minute)
	if err := h.store.ReportIntakeStall(ctx, store.IntakeStall{Topic: "platform.events", Partition: 3, StoreIDs: []string{string(stuck.Spec.StoreID)},
		Reason: "persist deliveries: no space left on device", Since: since}); err != nil {
		t.Fatal(err)
	}
	report()
	c := meta.FindStatusCondition(h.get(t, "stuck").Status.Conditions, controllers.ConditionHealthy)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != controllers.ReasonEventIntakeStalled ||
		!strings.Contains(c.Message, "platform.events/3") || !strings.Contains(c.Message, "no space left") {
		t.Fatalf("Healthy of the stuck store's subscription: %+v", c)
	}
	if c := meta.FindStatusCondition(h.get(t, "flowing").Status.Conditions, controllers.ConditionHealthy); c != nil && c.Status != metav1.ConditionTrue {
		t.Fatalf("another store's subscription: %+v", c)
	}
	cc := &integrationsv1.ConnectorConfig{}
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(connector), cc); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionSynced); c == nil || c.Status != metav1.ConditionFalse ||
		c.Reason != controllers.ReasonEventIntakeStalled {
		t.Fatalf("Synced of the stuck store's connector: %+v", c)
	}

	// The batch went through: the next report says so.
	if err := h.store.ClearIntakeStalls(ctx, []string{"platform.events"}, []int{3}); err != nil {
		t.Fatal(err)
	}
	report()
	if c := meta.FindStatusCondition(h.get(t, "stuck").Status.Conditions, controllers.ConditionHealthy); c == nil ||
		c.Status != metav1.ConditionTrue {
		t.Fatalf("Healthy after the stall cleared: %+v", c)
	}
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(connector), cc); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cc.Status.Conditions, controllers.ConditionSynced); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("Synced after the stall cleared: %+v", c)
	}
}

// Vault loses a signing secret (a restore, a dev restart): once the
// dispatcher records that it cannot find it, the next report shows it on
// the subscription and the manager puts it back within seconds, not at
// its next resync (an hour away here).
func TestASecretVaultLostShowsAndIsRestoredAtOnce(t *testing.T) {
	h := startManager(t, harnessOptions{resync: time.Hour})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "lost")); err != nil {
		t.Fatal(err)
	}
	sub := h.waitReady(t, "lost")
	subID := uuid.MustParse(string(sub.UID))
	before, err := h.vaultSecret(t, sub)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.vault.Delete(ctx, "webhook/"+subID.String()+"/secret"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the dispatcher notices after the condition was last set (kept to the second)
	// What the dispatcher's record stage writes when an attempt finds no secret.
	if err := h.store.RecordOutcomesAndStats(ctx, nil, []store.StatsDelta{{SubscriptionID: subID,
		LastError: "signing secret unavailable: vault: secret not found", SecretMissing: true}}); err != nil {
		t.Fatal(err)
	}
	reporter := &controllers.StatusReporter{Client: h.client, Store: h.store, Recorder: h.recorder, Log: logr.Discard(), Resync: h.wake}
	if err := reporter.ReportDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitEvent(t, "lost", controllers.ReasonSecretMissingFromVault, "restoring it")
	eventually(t, 10*time.Second, "the secret back in Vault, unchanged", func() error {
		after, err := h.vaultSecret(t, sub)
		if err != nil || after["secret"] != before["secret"] {
			return fmt.Errorf("not restored (%v)", err)
		}
		return nil
	})
	eventually(t, 10*time.Second, "SigningSecretSynced true again", func() error {
		c := meta.FindStatusCondition(h.get(t, "lost").Status.Conditions, controllers.ConditionSigningSecretSynced)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("%+v", c)
		}
		return nil
	})
	// Restored since: the next report does not flag it again.
	if err := reporter.ReportDeliveries(ctx); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(h.get(t, "lost").Status.Conditions, controllers.ConditionSigningSecretSynced); c.Status != metav1.ConditionTrue {
		t.Fatalf("flagged again after the restore: %+v", c)
	}
}

// staleCache answers Get for one object with a copy taken earlier, as an
// informer cache that has not yet seen the latest write does.
type staleCache struct {
	client.Client
	key  client.ObjectKey
	copy *integrationsv1.WebhookSubscription
}

func (c staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if key == c.key {
		c.copy.DeepCopyInto(obj.(*integrationsv1.WebhookSubscription))
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// The reporter marks a secret missing and wakes the reconciler before the
// cache has its write: the woken reconcile reads the object from the API
// server, so it writes "synced" back instead of finding its stale copy
// already says so. Without the wake's mark, the same reconcile leaves the
// condition false, which is what this guards against.
func TestAWokenReconcileDoesNotTrustAStaleCache(t *testing.T) {
	h := startManager(t, harnessOptions{resync: time.Hour})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "woken")); err != nil {
		t.Fatal(err)
	}
	synced := h.waitReady(t, "woken")
	key := client.ObjectKeyFromObject(synced)
	flagged := synced.DeepCopy()
	meta.SetStatusCondition(&flagged.Status.Conditions, metav1.Condition{Type: controllers.ConditionSigningSecretSynced,
		Status: metav1.ConditionFalse, Reason: controllers.ReasonSecretMissingFromVault, Message: "missing", ObservedGeneration: flagged.Generation})
	if err := h.client.Status().Update(ctx, flagged); err != nil {
		t.Fatal(err)
	}
	wake := controllers.NewWake(1)
	reconciler := &controllers.WebhookSubscriptionReconciler{
		Client: staleCache{Client: h.client, key: key, copy: synced}, APIReader: h.client,
		Store: h.store, Vault: h.vault, Metrics: h.metrics, Clock: clock.RealClock{}, Wake: wake,
	}
	syncedStatus := func() metav1.ConditionStatus {
		return meta.FindStatusCondition(h.get(t, "woken").Status.Conditions, controllers.ConditionSigningSecretSynced).Status
	}

	if _, err := reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if got := syncedStatus(); got != metav1.ConditionFalse {
		t.Fatalf("an unmarked reconcile from the stale copy wrote SigningSecretSynced=%s; the test no longer shows the race", got)
	}
	if !wake.Send(flagged) {
		t.Fatal("wake queue full")
	}
	if _, err := reconciler.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if got := syncedStatus(); got != metav1.ConditionTrue {
		t.Fatalf("SigningSecretSynced=%s after the woken reconcile", got)
	}
}

// The circuit state on the status is the breaker every dispatcher replica
// honours (endpoint_breakers), whichever replica opened it or probes it:
// the replicas' side is played through the store, as theirs does.
func TestTheStatusShowsTheSharedCircuitState(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "shared-breaker")); err != nil {
		t.Fatal(err)
	}
	subID := uuid.MustParse(string(h.waitReady(t, "shared-breaker").UID))
	reporter := &controllers.StatusReporter{Client: h.client, Store: h.store, Recorder: h.recorder, Log: logr.Discard()}
	circuit := func(want string) {
		t.Helper()
		if err := reporter.ReportDeliveries(ctx); err != nil {
			t.Fatal(err)
		}
		if d := h.get(t, "shared-breaker").Status.Delivery; d == nil || d.CircuitState != want {
			t.Fatalf("status.delivery %+v; want circuitState %q", d, want)
		}
	}
	// Replica a opens the breaker.
	if _, _, err := h.store.SyncLimits(ctx, store.LimitSync{Replica: "a", Lease: time.Minute,
		Opened: map[uuid.UUID]time.Duration{subID: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	circuit("open")
	// Its reopen time comes: the next attempt, from any replica, is the probe.
	if _, err := h.store.Pool().Exec(ctx, `UPDATE endpoint_breakers SET open_until = now() WHERE subscription_id = $1`, subID); err != nil {
		t.Fatal(err)
	}
	circuit("half-open")
	// Replica b holds the probe, then its probe succeeds.
	if won, err := h.store.ClaimProbe(ctx, subID, "b", time.Minute); err != nil || !won {
		t.Fatalf("b's probe: %v %v", won, err)
	}
	circuit("half-open")
	if err := h.store.CloseBreaker(ctx, subID, "b"); err != nil {
		t.Fatal(err)
	}
	circuit("closed")
}
