package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

func newSubscription(namespace, name string) *integrationsv1.WebhookSubscription {
	return &integrationsv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: integrationsv1.WebhookSubscriptionSpec{
			StoreID:     "store-1042",
			DisplayName: "ACME ERP",
			TargetURL:   "https://erp.acme.example/hooks",
			Events:      []integrationsv1.EventType{"order.placed", "product.*"},
		},
	}
}

func (h *harness) get(t *testing.T, name string) *integrationsv1.WebhookSubscription {
	t.Helper()
	var sub integrationsv1.WebhookSubscription
	if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: h.namespace, Name: name}, &sub); err != nil {
		t.Fatal(err)
	}
	return &sub
}

// waitCondition waits until condType has status and reason at the current generation.
func (h *harness) waitCondition(t *testing.T, name, condType string, status metav1.ConditionStatus, reason string) *integrationsv1.WebhookSubscription {
	t.Helper()
	var sub *integrationsv1.WebhookSubscription
	eventually(t, 30*time.Second, fmt.Sprintf("%s %s=%s/%s", name, condType, status, reason), func() error {
		sub = h.get(t, name)
		c := meta.FindStatusCondition(sub.Status.Conditions, condType)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != sub.Generation {
			return fmt.Errorf("condition is %+v", c)
		}
		return nil
	})
	return sub
}

func (h *harness) waitReady(t *testing.T, name string) *integrationsv1.WebhookSubscription {
	t.Helper()
	return h.waitCondition(t, name, integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
}

func (h *harness) vaultSecret(t *testing.T, sub *integrationsv1.WebhookSubscription) (map[string]string, error) {
	t.Helper()
	data, _, err := h.vault.Get(context.Background(), "webhook/"+string(sub.UID)+"/secret")
	return data, err
}

func (h *harness) ownedSecret(t *testing.T, sub *integrationsv1.WebhookSubscription) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := h.client.Get(context.Background(), client.ObjectKey{Namespace: h.namespace, Name: sub.Status.SigningSecretName}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestSubscriptionLifecycle(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	sub := newSubscription(h.namespace, "acme")
	if err := h.client.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	sub = h.waitReady(t, "acme")
	id := uuid.MustParse(string(sub.UID))

	if sub.Status.SubscriptionID != id.String() {
		t.Errorf("status.subscriptionId = %q, want the UID", sub.Status.SubscriptionID)
	}
	if want := "ss3/kv/integration-service/webhook/" + id.String() + "/secret"; sub.Status.VaultPath != want {
		t.Errorf("status.vaultPath = %q, want %q", sub.Status.VaultPath, want)
	}
	if sub.Status.VaultVersion != 1 {
		t.Errorf("status.vaultVersion = %d, want 1", sub.Status.VaultVersion)
	}
	if sub.Status.Conditions[0].Type != integrationsv1.ConditionReady {
		t.Errorf("Ready should come first, got %s", sub.Status.Conditions[0].Type)
	}
	// The design's path, read with the plain Vault API.
	raw, err := vaultServer.Client()
	if err != nil {
		t.Fatal(err)
	}
	kv, err := raw.KVv2("ss3/kv").Get(ctx, "integration-service/webhook/"+id.String()+"/secret")
	if err != nil {
		t.Fatalf("secret not at the design's path: %v", err)
	}
	secret, _ := kv.Data["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < 40 {
		t.Fatalf("generated secret has the wrong shape (%d chars)", len(secret))
	}
	if owned := h.ownedSecret(t, sub); string(owned.Data["secret"]) != secret {
		t.Error("owned Secret and Vault disagree")
	} else if !metav1.IsControlledBy(owned, sub) {
		t.Error("the signing Secret is not owned by the subscription")
	}

	row, ok, err := h.store.GetSubscription(ctx, id)
	if err != nil || !ok {
		t.Fatalf("row: %v %v", ok, err)
	}
	if row.StoreID != "store-1042" || row.Name != "ACME ERP" || row.TargetURL != "https://erp.acme.example/hooks" ||
		strings.Join(row.Events, ",") != "order.placed,product.*" || !row.IsActive {
		t.Fatalf("row does not match the spec: %+v", row)
	}

	// Edits follow into the row.
	update(t, sub, func() {
		sub.Spec.TargetURL = "https://erp.acme.example/v2/hooks"
		sub.Spec.Events = []integrationsv1.EventType{"order.*"}
	})
	eventually(t, 30*time.Second, "row follows the edit", func() error {
		row, _, err := h.store.GetSubscription(ctx, id)
		if err != nil {
			return err
		}
		if row.TargetURL != "https://erp.acme.example/v2/hooks" || strings.Join(row.Events, ",") != "order.*" {
			return fmt.Errorf("row is %+v", row)
		}
		return nil
	})
	sub = h.get(t, "acme")
	update(t, sub, func() {
		sub.Spec.Active = ptr.To(false)
	})
	eventually(t, 30*time.Second, "deactivation reaches the row", func() error {
		row, _, err := h.store.GetSubscription(ctx, id)
		if err != nil || row.IsActive {
			return fmt.Errorf("is_active=%v err=%v", row.IsActive, err)
		}
		return nil
	})
	sub = h.waitReady(t, "acme")
	if v := sub.Status.VaultVersion; v != 1 {
		t.Errorf("spec edits must not rewrite the secret; vault version is %d", v)
	}
	assertSecretNowhere(t, h, sub, secret)

	// Deletion removes the Vault secret, keeps the row as inactive, releases the object.
	if err := h.client.Delete(ctx, sub); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "object released", func() error {
		err := h.client.Get(ctx, client.ObjectKeyFromObject(sub), &integrationsv1.WebhookSubscription{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	if _, err := h.vaultSecret(t, sub); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Vault secret should be gone, got %v", err)
	}
	row, ok, err = h.store.GetSubscription(ctx, id)
	if err != nil || !ok || row.IsActive {
		t.Errorf("row should stay, inactive: ok=%v active=%v err=%v", ok, row.IsActive, err)
	}
}

// assertSecretNowhere checks the secret is in no status, event or annotation.
func assertSecretNowhere(t *testing.T, h *harness, sub *integrationsv1.WebhookSubscription, secret string) {
	t.Helper()
	obj, _ := json.Marshal(sub)
	if strings.Contains(string(obj), secret) || strings.Contains(string(obj), strings.TrimPrefix(secret, "whsec_")) {
		t.Error("the signing secret appears in the WebhookSubscription")
	}
	var evs eventsv1.EventList
	if err := h.client.List(context.Background(), &evs, client.InNamespace(h.namespace)); err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) == 0 {
		t.Error("expected Events about the signing secret")
	}
	for _, e := range evs.Items {
		if strings.Contains(e.Note, strings.TrimPrefix(secret, "whsec_")) {
			t.Errorf("event %s shows the secret", e.Reason)
		}
	}
}

func TestDriftIsRepaired(t *testing.T) {
	h := startManager(t, harnessOptions{resync: 2 * time.Second})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "drift")); err != nil {
		t.Fatal(err)
	}
	sub := h.waitReady(t, "drift")
	id := uuid.MustParse(string(sub.UID))
	original, err := h.vaultSecret(t, sub)
	if err != nil {
		t.Fatal(err)
	}

	// Delete the Vault secret and the row by hand: both come back, same secret.
	if err := h.vault.Delete(ctx, "webhook/"+id.String()+"/secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Pool().Exec(ctx, `DELETE FROM webhook_subscriptions WHERE subscription_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "Vault secret and row restored", func() error {
		data, err := h.vaultSecret(t, sub)
		if err != nil {
			return err
		}
		if data["secret"] != original["secret"] {
			return errors.New("restored a different secret")
		}
		if _, ok, err := h.store.GetSubscription(ctx, id); err != nil || !ok {
			return fmt.Errorf("row: ok=%v err=%v", ok, err)
		}
		return nil
	})

	// Change the Vault secret and the row by hand: both are put back.
	if _, err := h.vault.Put(ctx, "webhook/"+id.String()+"/secret", map[string]string{"secret": "whsec_tampered-tampered"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Pool().Exec(ctx, `UPDATE webhook_subscriptions SET target_url = 'https://evil.example' WHERE subscription_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "tampering undone", func() error {
		data, err := h.vaultSecret(t, sub)
		if err != nil {
			return err
		}
		row, _, err := h.store.GetSubscription(ctx, id)
		if err != nil {
			return err
		}
		if data["secret"] != original["secret"] || row.TargetURL != sub.Spec.TargetURL {
			return errors.New("not yet")
		}
		return nil
	})

	// Delete the owned Secret: it is restored from Vault, not regenerated.
	if err := h.client.Delete(ctx, h.ownedSecret(t, sub)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "owned Secret restored", func() error {
		var s corev1.Secret
		if err := h.client.Get(ctx, client.ObjectKey{Namespace: h.namespace, Name: sub.Status.SigningSecretName}, &s); err != nil {
			return err
		}
		if string(s.Data["secret"]) != original["secret"] {
			return errors.New("restored a different secret")
		}
		return nil
	})
}

func TestRotationKeepsThePreviousSecretForTheGracePeriod(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	sub := newSubscription(h.namespace, "rotate")
	sub.Spec.RotationGracePeriod = &metav1.Duration{Duration: 4 * time.Second}
	if err := h.client.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	sub = h.waitReady(t, "rotate")
	before, err := h.vaultSecret(t, sub)
	if err != nil {
		t.Fatal(err)
	}

	update(t, sub, func() {
		sub.Annotations = map[string]string{integrationsv1.RotateSigningSecretAnnotation: "2026-11-23T08:00:00Z"}
	})
	var during map[string]string
	eventually(t, 30*time.Second, "rotated", func() error {
		during, err = h.vaultSecret(t, sub)
		if err != nil {
			return err
		}
		if during["secret"] == before["secret"] {
			return errors.New("not rotated yet")
		}
		return nil
	})
	if during["previous"] != before["secret"] {
		t.Fatal("the previous secret is not kept during the grace period")
	}
	sub = h.get(t, "rotate")
	if sub.Status.PreviousSecretExpiresAt == nil || sub.Status.LastRotationRequest != "2026-11-23T08:00:00Z" {
		t.Errorf("status should show the rotation: %+v", sub.Status)
	}
	if owned := h.ownedSecret(t, sub); string(owned.Data["secret"]) != during["secret"] || string(owned.Data["previous"]) != before["secret"] {
		t.Error("owned Secret does not hold the rotated pair")
	}

	eventually(t, 30*time.Second, "previous secret gone after the grace period", func() error {
		after, err := h.vaultSecret(t, sub)
		if err != nil {
			return err
		}
		if _, ok := after["previous"]; ok {
			return errors.New("previous still present")
		}
		if after["secret"] != during["secret"] {
			return errors.New("the current secret changed")
		}
		return nil
	})
	// Vault is written before the status: wait for the status to follow.
	eventually(t, 30*time.Second, "status without a previous secret", func() error {
		if sub = h.get(t, "rotate"); sub.Status.PreviousSecretExpiresAt != nil {
			return errors.New("status still shows a previous secret")
		}
		return nil
	})
	sub = h.waitReady(t, "rotate")

	// A plain re-reconcile (a spec edit) does not rotate again.
	update(t, sub, func() {
		sub.Spec.DisplayName = "renamed"
	})
	h.waitReady(t, "rotate")
	if again, _ := h.vaultSecret(t, sub); again["secret"] != during["secret"] {
		t.Error("the secret changed without a rotation request")
	}

	// A GitOps prune deletes the owned Secret, rotation record and all: it
	// comes back with the same secret, and the handled request is not
	// taken for a new one.
	if err := h.client.Delete(ctx, h.ownedSecret(t, sub)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the owned Secret back", func() error {
		var owned corev1.Secret
		err := h.client.Get(ctx, client.ObjectKey{Namespace: h.namespace, Name: sub.Status.SigningSecretName}, &owned)
		if err != nil {
			return err
		}
		if string(owned.Data["secret"]) != during["secret"] {
			return errors.New("the restored Secret holds another secret")
		}
		return nil
	})
	if again, _ := h.vaultSecret(t, sub); again["secret"] != during["secret"] {
		t.Error("deleting the owned Secret rotated the signing secret")
	}
	if sub = h.get(t, "rotate"); sub.Status.LastRotationRequest != "2026-11-23T08:00:00Z" {
		t.Errorf("the rotation record after the Secret's deletion: %q", sub.Status.LastRotationRequest)
	}
}

func TestImportedSigningSecret(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	sub := newSubscription(h.namespace, "imported")
	sub.Spec.SigningSecretRef = &integrationsv1.SecretKeyReference{Name: "partner-secret", Key: "hmac"}
	if err := h.client.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	sub = h.waitCondition(t, "imported", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSecretRefNotFound)
	if c := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionReady); !strings.Contains(c.Message, "partner-secret") {
		t.Errorf("message should name the Secret: %q", c.Message)
	}

	ref := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "partner-secret", Namespace: h.namespace},
		Data: map[string][]byte{"other": []byte("x")}}
	if err := h.client.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	h.waitCondition(t, "imported", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSecretRefKeyMissing)

	update(t, ref, func() {
		ref.Data = map[string][]byte{"hmac": []byte("short")}
	})
	h.waitCondition(t, "imported", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSecretRefInvalid)

	update(t, ref, func() {
		ref.Data = map[string][]byte{"hmac": []byte("partner-chosen-secret-0001")}
	})
	sub = h.waitReady(t, "imported")
	if data, err := h.vaultSecret(t, sub); err != nil || data["secret"] != "partner-chosen-secret-0001" {
		t.Fatalf("imported secret not in Vault: %v", err)
	}

	// Changing the referenced value rotates, keeping the old one for the grace period.
	update(t, ref, func() {
		ref.Data = map[string][]byte{"hmac": []byte("partner-chosen-secret-0002")}
	})
	eventually(t, 30*time.Second, "imported rotation", func() error {
		data, err := h.vaultSecret(t, sub)
		if err != nil {
			return err
		}
		if data["secret"] != "partner-chosen-secret-0002" || data["previous"] != "partner-chosen-secret-0001" {
			return errors.New("not yet")
		}
		return nil
	})
	assertSecretNowhere(t, h, h.get(t, "imported"), "partner-chosen-secret-0002")
}

func TestSecretNameConflictIsReported(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken-signing-secret", Namespace: h.namespace},
		Data: map[string][]byte{"secret": []byte("someone else's")}}
	if err := h.client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Create(ctx, newSubscription(h.namespace, "taken")); err != nil {
		t.Fatal(err)
	}
	h.waitCondition(t, "taken", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonSecretNameConflict)
	var s corev1.Secret
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(foreign), &s); err != nil || string(s.Data["secret"]) != "someone else's" {
		t.Fatal("a Secret we do not own was overwritten")
	}
}

func TestDeletionWaitsForVault(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "outage")); err != nil {
		t.Fatal(err)
	}
	sub := h.waitReady(t, "outage")
	id := uuid.MustParse(string(sub.UID))

	vaultServer.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted { // leave Vault up for the next test
			_ = vaultServer.Start(context.Background())
			_ = vaultServer.EnableKV2(context.Background(), kvMount)
		}
	})
	if err := h.client.Delete(ctx, sub); err != nil {
		t.Fatal(err)
	}
	sub = h.waitCondition(t, "outage", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonVaultUnavailable)
	if c := meta.FindStatusCondition(sub.Status.Conditions, integrationsv1.ConditionReady); !strings.HasPrefix(c.Message, "Deleting:") {
		t.Errorf("condition should say deletion is waiting: %q", c.Message)
	}
	time.Sleep(2 * time.Second)
	if err := h.client.Get(ctx, client.ObjectKeyFromObject(sub), &integrationsv1.WebhookSubscription{}); err != nil {
		t.Fatalf("the object must stay while Vault is down: %v", err)
	}

	if err := vaultServer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vaultServer.EnableKV2(ctx, kvMount); err != nil {
		t.Fatal(err)
	}
	restarted = true
	eventually(t, 90*time.Second, "deletion completes once Vault is back", func() error {
		err := h.client.Get(ctx, client.ObjectKeyFromObject(sub), &integrationsv1.WebhookSubscription{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	if row, ok, err := h.store.GetSubscription(ctx, id); err != nil || !ok || row.IsActive {
		t.Errorf("row should be inactive: ok=%v active=%v err=%v", ok, row.IsActive, err)
	}
}

func TestDatabaseOutageIsReportedAndRecovers(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	pg.Stop()
	started := false
	t.Cleanup(func() {
		if !started {
			_ = pg.Start(context.Background())
		}
	})
	if err := h.client.Create(ctx, newSubscription(h.namespace, "dbdown")); err != nil {
		t.Fatal(err)
	}
	sub := h.waitCondition(t, "dbdown", integrationsv1.ConditionReady, metav1.ConditionFalse, controllers.ReasonDatabaseUnavailable)
	if c := meta.FindStatusCondition(sub.Status.Conditions, controllers.ConditionSigningSecretSynced); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("the signing secret should sync while the database is down: %+v", c)
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	started = true
	h.waitReady(t, "dbdown")
}

func TestManySubscriptionsAndAQuietIdlePass(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	const n = 200
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			sub := newSubscription(h.namespace, fmt.Sprintf("bulk-%03d", i))
			sub.Spec.StoreID = integrationsv1.StoreID(fmt.Sprintf("store-%d", i%10))
			if err := h.client.Create(ctx, sub); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "all Ready", func() error {
		return h.countReady(ctx, n)
	})
	t.Logf("%d subscriptions applied at once reached Ready in %v", n, time.Since(start).Round(time.Millisecond))

	// Let the reconciles that creation queued (owned Secrets, status) settle.
	settled := reconcileCount(t)
	for {
		time.Sleep(time.Second)
		now := reconcileCount(t)
		if now == settled {
			break
		}
		settled = now
	}

	// An idle pass: poke every object (an annotation the reconciler does not
	// act on) and count what the manager writes while reconciling them all.
	vaultBefore := testutil.ToFloat64(h.metrics.VaultWrites)
	dbBefore := testutil.ToFloat64(h.metrics.DatabaseWrites)
	kubeBefore := h.kubeWrites.Load()
	reconcilesBefore := reconcileCount(t)
	var list integrationsv1.WebhookSubscriptionList
	if err := h.client.List(ctx, &list, client.InNamespace(h.namespace)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		s := &list.Items[i]
		patch := client.MergeFrom(s.DeepCopy())
		s.Annotations = map[string]string{"example.com/poke": "1"}
		if err := h.client.Patch(ctx, s, patch); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 2*time.Minute, "idle pass reconciled every object", func() error {
		if got := reconcileCount(t) - reconcilesBefore; got < n {
			return fmt.Errorf("%v reconciles so far", got)
		}
		return nil
	})
	vaultWrites := testutil.ToFloat64(h.metrics.VaultWrites) - vaultBefore
	dbWrites := testutil.ToFloat64(h.metrics.DatabaseWrites) - dbBefore
	kubeWrites := h.kubeWrites.Load() - kubeBefore
	t.Logf("idle pass over %d subscriptions: %v Vault writes, %v Postgres writes, %d API-server writes", n, vaultWrites, dbWrites, kubeWrites)
	if vaultWrites != 0 || dbWrites != 0 || kubeWrites != 0 {
		t.Fatalf("an idle pass must write nothing")
	}
}

func (h *harness) countReady(ctx context.Context, want int) error {
	var list integrationsv1.WebhookSubscriptionList
	if err := h.client.List(ctx, &list, client.InNamespace(h.namespace)); err != nil {
		return err
	}
	ready := 0
	for _, s := range list.Items {
		if meta.IsStatusConditionTrue(s.Status.Conditions, integrationsv1.ConditionReady) {
			ready++
		}
	}
	if ready != want {
		return fmt.Errorf("%d of %d Ready", ready, want)
	}
	return nil
}

func TestSweepRemovesWhatDeletedObjectsLeftBehind(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "live")); err != nil {
		t.Fatal(err)
	}
	live := h.waitReady(t, "live")
	liveID := uuid.MustParse(string(live.UID))

	// What a bypassed finalizer leaves: a Vault secret and an active row.
	orphan := uuid.New()
	if _, err := h.vault.Put(ctx, "webhook/"+orphan.String()+"/secret", map[string]string{"secret": "whsec_orphaned"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.UpsertSubscription(ctx, store.Subscription{ID: orphan, StoreID: "s", Name: "n",
		TargetURL: "https://example.com", Events: []string{"order.placed"}, IsActive: true}); err != nil {
		t.Fatal(err)
	}

	// And a connector's: its credentials and an active row.
	orphanConnector := uuid.New()
	if _, err := h.vault.Put(ctx, "connector/"+orphanConnector.String()+"/api-secret", map[string]string{"value": "whsec_orphaned"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.UpsertConnectorConfig(ctx, store.ConnectorConfig{ID: orphanConnector, StoreID: "s", ConnectorType: "stripe",
		DisplayName: "gone", IsActive: true}); err != nil {
		t.Fatal(err)
	}

	// And a credential's row, still valid: nothing in Vault, but the key
	// would keep answering the gateway.
	if err := h.client.Create(ctx, newCredential(h.namespace, "live-key", integrationsv1.CredentialTypeAPIKey)); err != nil {
		t.Fatal(err)
	}
	liveKey := h.waitCredential(t, "live-key", "Ready", metav1.ConditionTrue, "Synced")
	orphanKey := uuid.New()
	if err := h.store.InsertCredential(ctx, store.Credential{ID: orphanKey, StoreID: "s", Name: "gone", Type: store.CredentialTypeAPIKey,
		ClientID: "ck_orphaned_" + orphanKey.String()[:8], HashedSecret: "$2a$04$notarealhashbutnotchecked.here", Scopes: []string{"orders:read"},
		IsActive: true, IssuedAt: time.Now(), CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}

	sweeper := &controllers.OrphanSweeper{Client: h.client, Store: h.store, Vault: h.vault, Metrics: h.metrics}
	if err := sweeper.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.vault.Get(ctx, "webhook/"+orphan.String()+"/secret"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("orphaned Vault secret should be gone: %v", err)
	}
	if row, _, _ := h.store.GetSubscription(ctx, orphan); row.IsActive {
		t.Error("orphaned row should be inactive")
	}
	if _, _, err := h.vault.Get(ctx, "connector/"+orphanConnector.String()+"/api-secret"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("orphaned connector credentials should be gone: %v", err)
	}
	if row, _, _ := h.store.GetConnectorConfig(ctx, orphanConnector); row.IsActive {
		t.Error("orphaned connector row should be inactive")
	}
	if _, err := h.vaultSecret(t, live); err != nil {
		t.Errorf("a live subscription's secret was swept: %v", err)
	}
	if row, _, _ := h.store.GetSubscription(ctx, liveID); !row.IsActive {
		t.Error("a live subscription's row was deactivated")
	}
	if row, _, _ := h.store.GetCredential(ctx, orphanKey); row.IsActive || row.RevokedAt == nil {
		t.Error("an orphaned credential should be revoked")
	}
	if row, _, _ := h.store.GetCredential(ctx, uuid.MustParse(string(liveKey.UID))); !row.IsActive || row.RevokedAt != nil {
		t.Error("a live credential was revoked")
	}
}
