package controllers

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// leftByDeletedOwner reports whether secret was written by us for an
// object of owner's kind that no longer exists: its controller is of that
// kind, and the object it names is gone or has been re-created under a new
// UID. The garbage collector would have deleted such a Secret; where none
// runs (a bare API server, or one that is behind), it would otherwise block
// the re-created resource with SecretNameConflict for ever. A Secret of a
// live object, or one not written by us, is never taken.
func leftByDeletedOwner(ctx context.Context, reader client.Reader, scheme *runtime.Scheme, secret metav1.Object, owner client.Object) (bool, error) {
	ref := metav1.GetControllerOf(secret)
	if secret.GetLabels()[managedByLabel] != managedByValue || ref == nil || ref.UID == owner.GetUID() {
		return false, nil
	}
	gvk, err := apiutil.GVKForObject(owner, scheme)
	if err != nil {
		return false, err
	}
	refGV, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || refGV.Group != gvk.Group || ref.Kind != gvk.Kind {
		return false, nil
	}
	current := &metav1.PartialObjectMetadata{}
	current.SetGroupVersionKind(gvk)
	err = reader.Get(ctx, types.NamespacedName{Namespace: secret.GetNamespace(), Name: ref.Name}, current)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return current.GetUID() != ref.UID, nil
}

// withoutController drops the controller reference from refs, keeping any
// other owners someone added.
func withoutController(refs []metav1.OwnerReference) []metav1.OwnerReference {
	var kept []metav1.OwnerReference
	for _, r := range refs {
		if r.Controller == nil || !*r.Controller {
			kept = append(kept, r)
		}
	}
	return kept
}
