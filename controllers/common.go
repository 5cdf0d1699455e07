package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
)

const (
	defaultResyncInterval = 10 * time.Minute
	managedByLabel        = "app.kubernetes.io/managed-by"
	managedByValue        = "integration-operator"
)

// patchStatusIfChanged writes obj's status only when it differs from
// before, so steady state costs the API server nothing.
func patchStatusIfChanged(ctx context.Context, c client.Client, original, obj client.Object, before, after any) error {
	if equality.Semantic.DeepEqual(before, after) {
		return nil
	}
	// Optimistic lock: the delivery reporter writes status too, and a stale
	// copy must not undo its work.
	if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("patch status: %w", err)
	}
	return nil
}

// conflictRetry turns a write conflict (someone wrote the object since we
// read it) into a quiet, prompt retry; other errors back off as usual.
func conflictRetry(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	return ctrl.Result{}, err
}

// fetchForReconcile reads the object at key into obj and parses its UID,
// the id under which we write outside the cluster. Unless the object is
// being deleted, it makes sure obj carries finalizer. found is false when
// the object is gone; deleting says the caller should finalize.
func fetchForReconcile(ctx context.Context, reader client.Reader, c client.Client, key types.NamespacedName, obj client.Object,
	finalizer string) (id uuid.UUID, found, deleting bool, err error) {
	if err := reader.Get(ctx, key, obj); err != nil {
		return id, false, false, client.IgnoreNotFound(err)
	}
	if id, err = uuid.Parse(string(obj.GetUID())); err != nil {
		return id, true, false, fmt.Errorf("uid %q of %s is not a UUID: %w", obj.GetUID(), key, err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return id, true, true, nil
	}
	return id, true, false, ensureFinalizer(ctx, c, obj, finalizer)
}

// ensureFinalizer adds finalizer by patch when missing.
func ensureFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	if controllerutil.ContainsFinalizer(obj, finalizer) {
		return nil
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	controllerutil.AddFinalizer(obj, finalizer)
	if err := c.Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("add finalizer: %w", err)
	}
	return nil
}

// releaseFinalizer removes finalizer by patch, letting the object go.
func releaseFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) error {
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	controllerutil.RemoveFinalizer(obj, finalizer)
	return client.IgnoreNotFound(c.Patch(ctx, obj, patch))
}

// controllerOptions: parallel reconciles, and failures retried quickly at
// first and at least every 30s, so an outage of Vault or Postgres heals
// soon after it ends.
func controllerOptions(concurrency int) controller.Options {
	return controller.Options{
		MaxConcurrentReconciles: max(1, concurrency),
		RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](250*time.Millisecond, 30*time.Second),
	}
}

func orDefault(d, fallback time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return fallback
}

// jitter spreads periodic resyncs of many objects over ±10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// every runs fn each interval until ctx ends, logging failures (the next
// interval is the retry).
func every(ctx context.Context, interval time.Duration, log logr.Logger, what string, fn func(context.Context) error) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, what+" failed; retrying next interval")
		}
	}, interval)
}

// retriggerDeadLetters acts on the retrigger-dead-letters annotation of obj
// when its value differs from last (the one handled before): requeue gets
// the retrigger-since time, if one is given. It returns the value to record
// as handled, and raises an Event saying what was done.
func retriggerDeadLetters(obj client.Object, last string, recorder events.EventRecorder, what string,
	requeue func(since *time.Time) (int64, error)) (string, error) {
	requested := obj.GetAnnotations()[integrationsv1.RetriggerDeadLettersAnnotation]
	if requested == "" || requested == last {
		return last, nil
	}
	event := func(eventType, reason, note string, args ...any) {
		if recorder != nil {
			recorder.Eventf(obj, nil, eventType, reason, "Retrigger", note, args...)
		}
	}
	var since *time.Time
	if v := obj.GetAnnotations()[integrationsv1.RetriggerSinceAnnotation]; v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			event(corev1.EventTypeWarning, "RetriggerRefused", "annotation %s=%q is not an RFC 3339 time", integrationsv1.RetriggerSinceAnnotation, v)
			return requested, nil
		}
		since = &t
	}
	n, err := requeue(since)
	if err != nil {
		return last, err
	}
	event(corev1.EventTypeNormal, "DeadLettersRequeued", "re-queued %d dead-lettered %s", n, what)
	return requested, nil
}
