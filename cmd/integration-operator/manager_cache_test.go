package main

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/ss3dev/integration-operator/internal/testbed"
)

// TestManagerCacheKeepsNoSecretContent: the Secret metadata the manager's
// watches cache (a real API server's) carries no annotations, where kubectl
// apply leaves a Secret's data, and no managed fields.
func TestManagerCacheKeepsNoSecretContent(t *testing.T) {
	kube := testbed.Start(t, testbed.Needs{Kube: true}).Kube
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const applied = `{"apiVersion":"v1","kind":"Secret","stringData":{"api-secret":"sk_live_do_not_cache"}}`
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default", Labels: map[string]string{"team": "payments"},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": applied}},
		StringData: map[string]string{"api-secret": "sk_live_do_not_cache"},
	}
	if err := kube.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}

	opts := secretCacheOptions()
	opts.Scheme = kube.Scheme
	c, err := cache.New(kube.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	got := &metav1.PartialObjectMetadata{}
	got.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	testbed.Eventually(t, 30*time.Second, 100*time.Millisecond, "the Secret's metadata in the cache", func() error {
		return c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "creds"}, got)
	})
	if len(got.Annotations) != 0 || len(got.ManagedFields) != 0 {
		t.Fatalf("the cache keeps %d annotations and %d managed fields of a Secret", len(got.Annotations), len(got.ManagedFields))
	}
	// What the watches' handlers use stays.
	if got.Labels["team"] != "payments" || got.UID == "" {
		t.Fatalf("the cache lost the Secret's labels or uid: %v %q", got.Labels, got.UID)
	}
}
