package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
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
