package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
)

// deleteAndWait deletes obj and waits until its finalizer has let it go.
func (h *harness) deleteAndWait(t *testing.T, obj client.Object) {
	t.Helper()
	if err := h.client.Delete(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "deleted", func() error {
		err := h.client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
}

// envtest runs no garbage collector, as a bare API server or one whose GC
// is behind: the Secret of a deleted subscription stays. Re-creating the
// subscription takes that Secret over, with a secret of its own, instead of
// reporting SecretNameConflict for ever.
func TestASecretLeftByADeletedSubscriptionIsAdopted(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "again")); err != nil {
		t.Fatal(err)
	}
	first := h.waitReady(t, "again")
	old := string(h.ownedSecret(t, first).Data["secret"])
	h.deleteAndWait(t, first)
	if left := h.ownedSecret(t, first); !metav1.IsControlledBy(left, first) {
		t.Fatal("the test needs the deleted subscription's Secret left behind")
	}

	if err := h.client.Create(ctx, newSubscription(h.namespace, "again")); err != nil {
		t.Fatal(err)
	}
	second := h.waitReady(t, "again")
	owned := h.ownedSecret(t, second)
	if !metav1.IsControlledBy(owned, second) || len(owned.OwnerReferences) != 1 {
		t.Fatalf("the Secret is not the new subscription's alone: %+v", owned.OwnerReferences)
	}
	inVault, err := h.vaultSecret(t, second)
	if err != nil || string(owned.Data["secret"]) == old || inVault["secret"] != string(owned.Data["secret"]) {
		t.Fatalf("the new subscription should sign with a secret of its own, in the Secret and in Vault (%v)", err)
	}
	h.waitEvent(t, "again", "SecretAdopted", "deleted subscription")
}

// A Secret of a live subscription is never taken, whatever its name.
func TestASecretOfALiveSubscriptionIsNotAdopted(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	if err := h.client.Create(ctx, newSubscription(h.namespace, "owner")); err != nil {
		t.Fatal(err)
	}
	owner := h.waitReady(t, "owner")
	theirs := h.ownedSecret(t, owner)
	// Another subscription whose owned Secret name would be the same.
	intruder := newSubscription(h.namespace, "intruder")
	if err := h.client.Create(ctx, intruder); err != nil {
		t.Fatal(err)
	}
	intruder = h.waitReady(t, "intruder")
	mine := h.ownedSecret(t, intruder)
	// Turn the intruder's Secret into a copy of the live owner's, owner
	// reference and all, in place: a delete and re-create would race the
	// reconciler, which restores its Secret at once.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got := &corev1.Secret{}
		if err := h.client.Get(ctx, client.ObjectKeyFromObject(mine), got); err != nil {
			return err
		}
		got.Labels, got.OwnerReferences, got.Data = theirs.Labels, theirs.OwnerReferences, theirs.Data
		return h.client.Update(ctx, got)
	}); err != nil {
		t.Fatal(err)
	}
	update(t, intruder, func() { intruder.Spec.DisplayName = "wake up" })
	h.waitCondition(t, "intruder", controllers.ConditionSigningSecretSynced, metav1.ConditionFalse, controllers.ReasonSecretNameConflict)
	if got := h.ownedSecret(t, intruder); !metav1.IsControlledBy(got, owner) {
		t.Fatal("the live subscription's Secret was taken over")
	}
}

// The same for an ApiCredential: the re-created credential delivers its
// new key into the Secret the deleted one left, as its owner.
func TestASecretLeftByADeletedCredentialIsAdopted(t *testing.T) {
	h := startManager(t, harnessOptions{})
	v := h.validator(t)
	ctx := context.Background()
	first := newCredential(h.namespace, "again", integrationsv1.CredentialTypeAPIKey)
	if err := h.client.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	first = h.waitCredential(t, "again", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	oldKey := string(h.secretData(t, "again-secret")[controllers.SecretKeyAPIKey])
	h.deleteAndWait(t, first)

	if err := h.client.Create(ctx, newCredential(h.namespace, "again", integrationsv1.CredentialTypeAPIKey)); err != nil {
		t.Fatal(err)
	}
	second := h.waitCredential(t, "again", integrationsv1.ConditionReady, metav1.ConditionTrue, controllers.ReasonSynced)
	var secret corev1.Secret
	if err := h.client.Get(ctx, client.ObjectKey{Namespace: h.namespace, Name: "again-secret"}, &secret); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(&secret, second) {
		t.Fatalf("the Secret is not the new credential's: %+v", secret.OwnerReferences)
	}
	newKey := string(secret.Data[controllers.SecretKeyAPIKey])
	if newKey == oldKey {
		t.Fatal("the Secret still holds the deleted credential's key")
	}
	if _, ok := validAPIKey(t, v, newKey); !ok {
		t.Fatal("the new key is refused")
	}
	if _, ok := validAPIKey(t, v, oldKey); ok {
		t.Fatal("the deleted credential's key is accepted")
	}
}
