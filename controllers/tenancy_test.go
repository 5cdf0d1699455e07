package controllers_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/controllers"
)

// tenancyObjects returns one object of each kind for storeID in namespace.
func tenancyObjects(namespace, storeID string) []client.Object {
	sub := newSubscription(namespace, "orders")
	sub.Spec.StoreID = integrationsv1.StoreID(storeID)
	cred := newCredential(namespace, "warehouse", integrationsv1.CredentialTypeAPIKey)
	cred.Spec.StoreID = integrationsv1.StoreID(storeID)
	conn := &integrationsv1.ConnectorConfig{
		ObjectMeta: metav1.ObjectMeta{Name: "stripe", Namespace: namespace},
		Spec: integrationsv1.ConnectorConfigSpec{StoreID: integrationsv1.StoreID(storeID), ConnectorType: integrationsv1.ConnectorStripe,
			DisplayName: "Stripe", CredentialsSecretRef: integrationsv1.ConnectorCredentialsReference{Name: "stripe-endpoint"}},
	}
	return []client.Object{sub, cred, conn}
}

func kindOf(obj client.Object) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1.")
}

// createNamespace creates a namespace bound to storeIDs, removed with its
// objects after the test: envtest runs no namespace controller, and the
// managers of later tests would otherwise reconcile what is left.
func createNamespace(t *testing.T, storeIDs ...string) string {
	t.Helper()
	ctx := context.Background()
	ns := boundNamespace(fmt.Sprintf("tenancy-%d", time.Now().UnixNano()), storeIDs...)
	if err := kube.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, obj := range tenancyObjects(ns.Name, "") {
			if err := kube.Client.DeleteAllOf(ctx, obj, client.InNamespace(ns.Name)); err != nil {
				t.Errorf("delete the %ss left in %s: %v", kindOf(obj), ns.Name, err)
			}
		}
		_ = kube.Client.Delete(ctx, ns)
	})
	return ns.Name
}

func TestTenancyUnboundStoreIsRefusedWithTheMessage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		bound []string
		// wantBound is how the message lists the namespace's stores, and
		// wantValue the annotation value it tells the platform team to set.
		wantBound, wantValue string
	}{
		{"unbound namespace", nil, "none", "store-9"},
		{"bound to other stores", []string{"store-1042", "store-2077"}, "store-1042,store-2077", "store-1042,store-2077,store-9"},
		// A list, not a substring: store-9 is not store-90.
		{"bound to a longer id", []string{"store-90"}, "store-90", "store-90,store-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := createNamespace(t, tc.bound...)
			for _, obj := range tenancyObjects(ns, "store-9") {
				err := kube.Client.Create(ctx, obj)
				if err == nil {
					t.Fatalf("%s for store-9 admitted in a namespace bound to %q", kindOf(obj), tc.bound)
				}
				for _, want := range []string{
					"storeId store-9 is not bound to namespace " + ns + " (bound: " + tc.wantBound + ")",
					"kubectl annotate namespace " + ns + " --overwrite integrations.ss3.dev/store-ids=" + tc.wantValue,
					"docs/tenancy.md",
				} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s refusal lacks %q:\n%v", kindOf(obj), want, err)
					}
				}
				if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
					t.Errorf("%s refusal is neither Forbidden nor Invalid: %v", kindOf(obj), err)
				}
			}
		})
	}
}

func TestTenancyBoundStoreIsAdmitted(t *testing.T) {
	ctx := context.Background()
	// Spaces around the commas are the platform team's to choose.
	ns := createNamespace(t, "store-1", " store-9 ", "store-3")
	for _, obj := range tenancyObjects(ns, "store-9") {
		if err := kube.Client.Create(ctx, obj); err != nil {
			t.Errorf("%s for a bound store refused: %v", kindOf(obj), err)
		}
	}
}

func TestTenancyStoreIDCannotChange(t *testing.T) {
	ctx := context.Background()
	// Bound to both, so only the immutability rule can refuse the change.
	ns := createNamespace(t, "store-1042", "store-2077")
	for _, obj := range tenancyObjects(ns, "store-1042") {
		if err := kube.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(integrationsv1.GroupVersion.WithKind(kindOf(obj)))
		if err := kube.Client.Get(ctx, client.ObjectKeyFromObject(obj), u); err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedField(u.Object, "store-2077", "spec", "storeId")
		err := kube.Client.Update(ctx, u)
		want := "storeId cannot be changed; create a new " + kindOf(obj) + " for another store"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("changing %s storeId: got %v, want a refusal saying %q", kindOf(obj), err, want)
		}
	}
}

// A namespace unbound after its objects were created keeps them frozen:
// no spec change, but metadata writes pass, and deletion, which needs the
// manager to release its finalizers, completes.
func TestTenancyDeletionWorksAfterUnbinding(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	objs := tenancyObjects(h.namespace, "store-1042")
	for _, obj := range objs {
		if err := h.client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "the manager's finalizers on every object", func() error {
		for _, obj := range objs {
			if err := h.client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				return err
			}
			if len(obj.GetFinalizers()) == 0 {
				return fmt.Errorf("%s has no finalizer yet", kindOf(obj))
			}
		}
		return nil
	})

	ns := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.namespace}}
	update(t, &ns, func() { delete(ns.Annotations, integrationsv1.StoreIDsAnnotation) })
	// The policy reads namespaces from an informer: wait until it sees the unbinding.
	eventually(t, 10*time.Second, "the unbinding enforced", func() error {
		err := h.client.Create(ctx, newSubscription(h.namespace, "after-unbinding"), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "(bound: none)") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})

	sub := objs[0].(*integrationsv1.WebhookSubscription)
	// Read again on a conflict: the manager may write the object (status,
	// finalizer) between our read and our update.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := h.client.Get(ctx, client.ObjectKeyFromObject(sub), sub); err != nil {
			return err
		}
		changed := sub.DeepCopy()
		changed.Spec.DisplayName = "changed after unbinding"
		return h.client.Update(ctx, changed)
	})
	if err == nil || !strings.Contains(err.Error(), "is not bound to namespace") {
		t.Errorf("a spec change after unbinding: got %v, want the tenancy refusal", err)
	}
	// As kubectl label does: a patch leaving the spec as stored.
	for _, obj := range objs {
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
		obj.SetLabels(map[string]string{"team": "payments"})
		if err := h.client.Patch(ctx, obj, patch); err != nil {
			t.Errorf("labelling %s after unbinding: %v", kindOf(obj), err)
		}
	}

	for _, obj := range objs {
		if err := h.client.Delete(ctx, obj); err != nil {
			t.Fatalf("delete %s: %v", kindOf(obj), err)
		}
	}
	eventually(t, 30*time.Second, "every object gone after its finalizer is released", func() error {
		for _, obj := range objs {
			err := h.client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			if err == nil {
				return fmt.Errorf("%s still there, finalizers %v", kindOf(obj), obj.GetFinalizers())
			}
			if !apierrors.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
}

// An object stuck with a finalizer nobody releases any more (its namespace
// unbound meanwhile) can still be released by hand.
func TestTenancyForeignFinalizerReleasedAfterUnbinding(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "store-1042")
	const finalizer = "example.com/held"
	for _, obj := range tenancyObjects(ns, "store-1042") {
		obj.SetFinalizers([]string{finalizer})
		if err := kube.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	nsObj := corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	update(t, &nsObj, func() { delete(nsObj.Annotations, integrationsv1.StoreIDsAnnotation) })
	eventually(t, 10*time.Second, "the unbinding enforced", func() error {
		err := kube.Client.Create(ctx, newSubscription(ns, "probe"), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "(bound: none)") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	for _, obj := range tenancyObjects(ns, "store-1042") {
		if err := kube.Client.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
		update(t, obj, func() { controllerutil.RemoveFinalizer(obj, finalizer) })
		if err := kube.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); !apierrors.IsNotFound(err) {
			t.Errorf("%s after its finalizer was removed: %v", kindOf(obj), err)
		}
	}
}

func TestTenancyTargetURLWithCredentialsIsRefused(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "store-1042")
	for i, target := range []string{
		"https://partner:s3cret@hooks.example.com/ss3",
		"https://token@hooks.example.com/ss3",
		"https://partner:s3cret@hooks.example.com:8443/ss3?x=1",
	} {
		sub := newSubscription(ns, fmt.Sprintf("creds-%d", i))
		sub.Spec.TargetURL = target
		err := kube.Client.Create(ctx, sub)
		if err == nil {
			t.Errorf("%s admitted", target)
			continue
		}
		for _, want := range []string{"targetURL must not contain credentials", "X-SS3-Signature"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("refusal of %s lacks %q:\n%v", target, want, err)
			}
		}
	}
	// An @ past the host is not user info.
	sub := newSubscription(ns, "at-in-path")
	sub.Spec.TargetURL = "https://hooks.example.com/ss3/@team?by=me@example.com"
	if err := kube.Client.Create(ctx, sub); err != nil {
		t.Fatalf("an @ in the path refused: %v", err)
	}
	sub.Spec.TargetURL = "https://a:b@hooks.example.com/ss3"
	if err := kube.Client.Update(ctx, sub); err == nil || !strings.Contains(err.Error(), "targetURL must not contain credentials") {
		t.Errorf("changing targetURL to one with credentials: got %v, want the refusal", err)
	}
}

// A subscription stored before the CRD refused credentials in targetURL
// (made here by lifting the rule for a moment) is marked not Ready, and
// kubectl get shows its URL without them.
func TestTenancyStoredCredentialsInTargetURLAreHidden(t *testing.T) {
	h := startManager(t, harnessOptions{})
	ctx := context.Background()
	legacy := newSubscription(h.namespace, "legacy")
	legacy.Spec.TargetURL = "https://partner:s3cret@hooks.example.com/ss3"
	restore := liftCredentialsRule(t)
	eventually(t, 30*time.Second, "the rule lifted", func() error {
		return h.client.Create(ctx, legacy.DeepCopy(), client.DryRunAll)
	})
	if err := h.client.Create(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	restore()

	sub := h.waitCondition(t, "legacy", "Ready", metav1.ConditionFalse, controllers.ReasonCredentialsInTargetURL)
	if c := sub.Status.Conditions[0]; !strings.Contains(c.Message, "X-SS3-Signature") || strings.Contains(c.Message, "s3cret") {
		t.Errorf("Ready message: %q", c.Message)
	}
	if sub.Status.TargetURL != "https://hooks.example.com/ss3" {
		t.Errorf("status.targetURL = %q, want it without user info", sub.Status.TargetURL)
	}
	kubeconfig, err := kube.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("kubectl", "--kubeconfig", kubeconfig, "get", "whsub", "-n", h.namespace, "-o", "wide").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "https://hooks.example.com/ss3") {
		t.Errorf("kubectl get whsub shows:\n%s", out)
	}

	// Writes that leave targetURL alone still pass (CRD validation
	// ratcheting), and fixing it makes the subscription Ready.
	update(t, sub, func() { sub.Labels = map[string]string{"team": "payments"} })
	update(t, sub, func() { sub.Spec.TargetURL = "https://hooks.example.com/ss3" })
	h.waitReady(t, "legacy")
}

// liftCredentialsRule removes the no-credentials rule from the
// WebhookSubscription CRD; the function it returns (also run at cleanup)
// puts it back and waits until it is enforced again.
func liftCredentialsRule(t *testing.T) func() {
	t.Helper()
	ctx := context.Background()
	const name = "webhooksubscriptions.integrations.ss3.dev"
	path := []string{"schema", "openAPIV3Schema", "properties", "spec", "properties", "targetURL", "x-kubernetes-validations"}
	var lifted any
	edit := func(change func(rules []any) []any) {
		t.Helper()
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
		crd.SetName(name)
		update(t, crd, func() {
			versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
			version := versions[0].(map[string]any)
			rules, _, _ := unstructured.NestedSlice(version, path...)
			if err := unstructured.SetNestedSlice(version, change(rules), path...); err != nil {
				t.Fatal(err)
			}
			if err := unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions"); err != nil {
				t.Fatal(err)
			}
		})
	}
	edit(func(rules []any) []any {
		var kept []any
		for _, r := range rules {
			if strings.HasPrefix(r.(map[string]any)["message"].(string), "targetURL must not contain credentials") {
				lifted = r
				continue
			}
			kept = append(kept, r)
		}
		if lifted == nil {
			t.Fatal("the CRD has no rule refusing credentials in targetURL")
		}
		return kept
	})
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		edit(func(rules []any) []any { return append(rules, lifted) })
		probe := newSubscription("default", "probe")
		probe.Spec.TargetURL = "https://a:b@hooks.example.com/"
		eventually(t, 30*time.Second, "the rule enforced again", func() error {
			if err := kube.Client.Create(ctx, probe.DeepCopy(), client.DryRunAll); err == nil || !strings.Contains(err.Error(), "must not contain credentials") {
				return fmt.Errorf("got %v", err)
			}
			return nil
		})
	}
	t.Cleanup(restore)
	return restore
}
