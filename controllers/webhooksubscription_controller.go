package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// Condition types of a WebhookSubscription besides Ready.
const (
	ConditionSigningSecretSynced = "SigningSecretSynced"
	ConditionDatabaseSynced      = "DatabaseSynced"
)

const (
	webhookFinalizer        = "integrations.ss3.dev/webhook-cleanup"
	importedSecretIndex     = "spec.importedSecretNames"
	defaultGracePeriod      = 24 * time.Hour
	kindWebhookSubscription = "WebhookSubscription"
)

// WebhookSubscriptionReconciler keeps, for each WebhookSubscription, a signing
// secret (in an owned Secret and in Vault) and a webhook_subscriptions row
// in line with the spec, and reports on the status.
type WebhookSubscriptionReconciler struct {
	Client client.Client
	// APIReader reads Secrets uncached, so the manager does not hold every
	// Secret of the cluster in memory.
	APIReader client.Reader
	Store     *store.Store
	Vault     *vault.Client
	Recorder  events.EventRecorder
	Metrics   *Metrics
	Clock     clock.PassiveClock
	// ResyncInterval re-reconciles every object this often (jittered), to
	// repair drift no watch sees (a Vault secret or row changed by hand).
	ResyncInterval          time.Duration
	MaxConcurrentReconciles int
	// Wake, when set, reconciles the subscriptions sent on it now (the
	// status reporter sends one whose Vault secret the dispatcher lacks).
	Wake *Wake
}

// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=webhooksubscriptions,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=webhooksubscriptions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=webhooksubscriptions/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one subscription's signing secret and row in line with its spec.
func (r *WebhookSubscriptionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var sub integrationsv1.WebhookSubscription
	var reader client.Reader = r.Client
	if r.Wake.takeFresh(req.NamespacedName) {
		reader = r.APIReader
	}
	id, found, deleting, err := fetchForReconcile(ctx, reader, r.Client, req.NamespacedName, &sub, webhookFinalizer)
	switch {
	case err != nil || !found:
		return ctrl.Result{}, err
	case deleting:
		return r.finalize(ctx, &sub, id)
	}

	original := sub.DeepCopy()
	sub.Status.SubscriptionID = id.String()
	sub.Status.VaultPath = r.Vault.Path(webhookSecretPath(id))

	secretCond, expiresAt, secretErr := r.syncSigningSecret(ctx, &sub, id)
	setCondition(&sub.Status.Conditions, sub.Generation, secretCond)
	destCond, destErr := r.syncDestination(ctx, &sub, id)
	if destCond != nil {
		setCondition(&sub.Status.Conditions, sub.Generation, *destCond)
	}
	dbCond, dbErr := r.syncRow(ctx, &sub, id)
	setCondition(&sub.Status.Conditions, sub.Generation, dbCond)
	if dbErr == nil {
		dbErr = r.retrigger(ctx, &sub, id)
	}
	subscriptionReadiness(&sub, sub.Generation)
	sub.Status.ObservedGeneration = sub.Generation

	if err := r.patchStatus(ctx, original, &sub); err != nil {
		return conflictRetry(err)
	}
	if err := errors.Join(secretErr, destErr, dbErr); err != nil {
		// Returning the error retries with the controller's exponential backoff.
		return ctrl.Result{}, err
	}
	next := jitter(orDefault(r.ResyncInterval, defaultResyncInterval))
	if !expiresAt.IsZero() {
		if until := expiresAt.Sub(r.Clock.Now()); until < next {
			next = until + time.Second
		}
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// syncSigningSecret makes the owned Secret and Vault hold the signing
// secret: imported from spec.signingSecretRef or generated once, rotated on
// request, and restored from whichever copy survives when the other is lost.
// It returns the condition, and when the previous secret expires (if any).
func (r *WebhookSubscriptionReconciler) syncSigningSecret(ctx context.Context, sub *integrationsv1.WebhookSubscription, id uuid.UUID) (metav1.Condition, time.Time, error) {
	const condType = ConditionSigningSecretSynced
	ownedName := ownedSecretName(sub.Name)
	sub.Status.SigningSecretName = ownedName

	owned := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: sub.Namespace, Name: ownedName}, owned)
	ownedExists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return falseCondition(condType, ReasonKubernetesError, fmt.Sprintf("reading Secret %s: %v", ownedName, err)), time.Time{}, err
	}
	adopted := false
	if ownedExists && !metav1.IsControlledBy(owned, sub) {
		stale, err := leftByDeletedOwner(ctx, r.APIReader, r.Client.Scheme(), owned, sub)
		if err != nil {
			return falseCondition(condType, ReasonKubernetesError, fmt.Sprintf("reading the owner of Secret %s: %v", ownedName, err)), time.Time{}, err
		}
		if !stale {
			return falseCondition(condType, ReasonSecretNameConflict, fmt.Sprintf(
				"Secret %s exists and is not owned by this subscription; rename or delete it so the signing secret can be stored there", ownedName)), time.Time{}, nil
		}
		// What a deleted subscription of the same name left is not this
		// one's: its secret is not reused, only the Secret's name.
		adopted = true
		owned.OwnerReferences = withoutController(owned.OwnerReferences)
		owned.Data = nil
		delete(owned.Annotations, rotationRecordAnnotation)
		r.event(sub, corev1.EventTypeNormal, "SecretAdopted", "Adopt",
			"Secret %s was left by a deleted subscription of the same name; it now holds this subscription's signing secret", ownedName)
	}

	path := webhookSecretPath(id)
	inVault, version, err := r.Vault.Get(ctx, path)
	vaultMissing := errors.Is(err, vault.ErrNotFound)
	if err != nil && !vaultMissing {
		return vaultCondition(condType, "reading the signing secret", err), time.Time{}, err
	}

	var state signingState
	if ownedExists {
		state = signingStateFrom(bytesToStrings(owned.Data))
	}
	if state.current == "" && !vaultMissing && inVault[keyCurrentSecret] != "" {
		state = signingStateFrom(inVault)
		r.event(sub, corev1.EventTypeWarning, "SigningSecretRestored", "Restore",
			"Secret %s was missing; restored the signing secret from Vault", ownedName)
	}

	now := r.Clock.Now()
	handled := owned.Annotations[rotationRecordAnnotation]
	if !ownedExists || adopted {
		// A prune deleted the Secret, and with it the record there: the
		// status keeps it too, so the request is not taken for a new one.
		handled = sub.Status.LastRotationRequest
	}
	requested := sub.Annotations[integrationsv1.RotateSigningSecretAnnotation]
	expires := now.Add(gracePeriod(sub))
	if ref := sub.Spec.SigningSecretRef; ref != nil {
		imported, cond, err := r.readSecretRef(ctx, sub, ref)
		if cond != nil {
			return *cond, time.Time{}, err
		}
		switch {
		case state.current == "":
			state.current = imported
			r.event(sub, corev1.EventTypeNormal, "SigningSecretImported", "Import", "imported the signing secret from Secret %s", ref.Name)
		case !sameSecret(state.current, imported):
			state.rotate(imported, expires)
			r.event(sub, corev1.EventTypeNormal, "SigningSecretRotated", "Rotate",
				"Secret %s changed: it is now the signing secret; the previous one stays valid until %s", ref.Name, expires.UTC().Format(time.RFC3339))
		}
		if requested != "" && requested != handled {
			handled = requested
			r.event(sub, corev1.EventTypeWarning, "RotationNotApplicable", "Rotate",
				"the signing secret is imported from Secret %s; change the value there to rotate it", ref.Name)
		}
	} else {
		if state.current == "" {
			if state.current, err = signing.GenerateSecret(); err != nil {
				return falseCondition(condType, ReasonKubernetesError, err.Error()), time.Time{}, err
			}
			r.event(sub, corev1.EventTypeNormal, "SigningSecretGenerated", "Generate", "generated a signing secret in Secret %s", ownedName)
		}
		if requested != "" && requested != handled {
			next, err := signing.GenerateSecret()
			if err != nil {
				return falseCondition(condType, ReasonKubernetesError, err.Error()), time.Time{}, err
			}
			state.rotate(next, expires)
			handled = requested
			r.event(sub, corev1.EventTypeNormal, "SigningSecretRotated", "Rotate",
				"generated a new signing secret in Secret %s; the previous one stays valid until %s", ownedName, expires.UTC().Format(time.RFC3339))
		}
	}
	if state.expire(now) {
		r.event(sub, corev1.EventTypeNormal, "PreviousSigningSecretExpired", "Expire", "the previous signing secret's grace period ended; only the current one is used")
	}
	desired := state.data()

	// The owned Secret first: it is the record Vault is restored from.
	if err := r.writeOwnedSecret(ctx, sub, owned, ownedExists, ownedName, desired, handled); err != nil {
		return falseCondition(condType, ReasonKubernetesError, fmt.Sprintf("writing Secret %s: %v", ownedName, err)), time.Time{}, err
	}
	if vaultMissing || !sameSecretData(inVault, desired) {
		if version, err = r.Vault.Put(ctx, path, desired); err != nil {
			return vaultCondition(condType, "writing the signing secret", err), time.Time{}, err
		}
		r.Metrics.VaultWrites.WithLabelValues(kindWebhookSubscription, "put").Inc()
		if !vaultMissing && ownedExists {
			r.event(sub, corev1.EventTypeNormal, "VaultSecretRepaired", "Repair", "the signing secret in Vault differed from Secret %s; rewrote it", ownedName)
		}
	}
	sub.Status.VaultVersion = version
	sub.Status.LastRotationRequest = handled
	sub.Status.PreviousSecretExpiresAt = nil
	if state.previous != "" {
		t := metav1.NewTime(state.previousExpiresAt)
		sub.Status.PreviousSecretExpiresAt = &t
	}
	return trueCondition(condType, fmt.Sprintf("signing secret in Secret %s and in Vault at %s", ownedName, sub.Status.VaultPath)),
		state.previousExpiresAt, nil
}

// readSecretRef returns the referenced secret value, or a condition saying
// what the user must fix. Its content never appears in the message.
func (r *WebhookSubscriptionReconciler) readSecretRef(ctx context.Context, sub *integrationsv1.WebhookSubscription, ref *integrationsv1.SecretKeyReference) (string, *metav1.Condition, error) {
	const condType = ConditionSigningSecretSynced
	key := ref.Key
	if key == "" {
		key = "secret"
	}
	var s corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: sub.Namespace, Name: ref.Name}, &s)
	if apierrors.IsNotFound(err) {
		c := falseCondition(condType, ReasonSecretRefNotFound, fmt.Sprintf("Secret %s named by signingSecretRef does not exist in namespace %s", ref.Name, sub.Namespace))
		return "", &c, nil
	}
	if err != nil {
		c := falseCondition(condType, ReasonKubernetesError, fmt.Sprintf("reading Secret %s: %v", ref.Name, err))
		return "", &c, err
	}
	value, ok := s.Data[key]
	if !ok {
		c := falseCondition(condType, ReasonSecretRefKeyMissing, fmt.Sprintf("Secret %s has no key %q", ref.Name, key))
		return "", &c, nil
	}
	if len(value) < signing.MinImportedSecretLength {
		c := falseCondition(condType, ReasonSecretRefInvalid, fmt.Sprintf("the value of key %q in Secret %s is shorter than %d characters", key, ref.Name, signing.MinImportedSecretLength))
		return "", &c, nil
	}
	return string(value), nil, nil
}

func (r *WebhookSubscriptionReconciler) writeOwnedSecret(ctx context.Context, sub *integrationsv1.WebhookSubscription, owned *corev1.Secret, exists bool, name string, data map[string]string, handled string) error {
	if exists && sameSecretData(bytesToStrings(owned.Data), data) && owned.Annotations[rotationRecordAnnotation] == handled {
		return nil
	}
	if !exists {
		owned = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: sub.Namespace}, Type: corev1.SecretTypeOpaque}
	}
	if owned.Labels == nil {
		owned.Labels = map[string]string{}
	}
	owned.Labels[managedByLabel] = managedByValue
	if handled != "" {
		if owned.Annotations == nil {
			owned.Annotations = map[string]string{}
		}
		owned.Annotations[rotationRecordAnnotation] = handled
	}
	owned.Data = stringsToBytes(data)
	if err := controllerutil.SetControllerReference(sub, owned, r.Client.Scheme()); err != nil {
		return err
	}
	if !exists {
		return r.Client.Create(ctx, owned)
	}
	return r.Client.Update(ctx, owned)
}

func (r *WebhookSubscriptionReconciler) syncRow(ctx context.Context, sub *integrationsv1.WebhookSubscription, id uuid.UUID) (metav1.Condition, error) {
	events := make([]string, len(sub.Spec.Events))
	for i, e := range sub.Spec.Events {
		events[i] = string(e)
	}
	dest, target := storedDestination(&sub.Spec)
	wrote, err := r.Store.UpsertSubscription(ctx, store.Subscription{
		ID: id, StoreID: string(sub.Spec.StoreID), Name: sub.Spec.DisplayName, TargetURL: target, Destination: dest,
		Events: events, IsActive: sub.Spec.IsActive(), DeliveryTimeout: deliveryTimeout(sub), SignatureScheme: sub.Spec.SignatureScheme,
		MaxConcurrency: int(sub.Spec.MaxConcurrentDeliveries), RateLimit: rateOf(sub.Spec.RateLimit), RateBurst: burstOf(sub.Spec.RateLimit),
	})
	if err != nil {
		return falseCondition(ConditionDatabaseSynced, ReasonDatabaseUnavailable, fmt.Sprintf("writing the webhook_subscriptions row: %v", err)), err
	}
	if wrote {
		r.Metrics.DatabaseWrites.WithLabelValues("webhook_subscriptions").Inc()
	}
	return trueCondition(ConditionDatabaseSynced, "webhook_subscriptions row matches the spec"), nil
}

// retrigger re-queues dead-lettered deliveries when the annotation asks
// for it with a value not handled before.
func (r *WebhookSubscriptionReconciler) retrigger(ctx context.Context, sub *integrationsv1.WebhookSubscription, id uuid.UUID) error {
	var err error
	sub.Status.LastRetrigger, err = retriggerDeadLetters(sub, sub.Status.LastRetrigger, r.Recorder, "deliveries, keeping their delivery ids",
		func(since *time.Time) (int64, error) {
			n, err := r.Store.RequeueDeadLettered(ctx, id, since)
			r.Metrics.DatabaseWrites.WithLabelValues("webhook_deliveries").Add(float64(n))
			return n, err
		})
	return err
}

// finalize deletes the Vault secret and marks the row inactive (deliveries
// stay for audit), then releases the object. Until both succeed the
// finalizer stays and the status says what is waited for.
func (r *WebhookSubscriptionReconciler) finalize(ctx context.Context, sub *integrationsv1.WebhookSubscription, id uuid.UUID) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(sub, webhookFinalizer) {
		return ctrl.Result{}, nil
	}
	original := sub.DeepCopy()
	var errs []error
	if err := r.Vault.Delete(ctx, webhookSecretPath(id)); err != nil {
		errs = append(errs, err)
		c := vaultCondition(integrationsv1.ConditionReady, "deleting the signing secret", err)
		c.Message = "Deleting: " + c.Message
		setCondition(&sub.Status.Conditions, sub.Generation, c)
	} else {
		r.Metrics.VaultWrites.WithLabelValues(kindWebhookSubscription, "delete").Inc()
	}
	if err := r.Vault.Delete(ctx, destinationPath(id)); err != nil && len(errs) == 0 {
		errs = append(errs, err)
		c := vaultCondition(integrationsv1.ConditionReady, "deleting the destination's credentials", err)
		c.Message = "Deleting: " + c.Message
		setCondition(&sub.Status.Conditions, sub.Generation, c)
	}
	if wrote, err := r.Store.DeactivateSubscription(ctx, id); err != nil {
		errs = append(errs, err)
		if len(errs) == 1 {
			setCondition(&sub.Status.Conditions, sub.Generation, falseCondition(integrationsv1.ConditionReady, ReasonDatabaseUnavailable,
				fmt.Sprintf("Deleting: waiting for the database to mark the subscription inactive: %v", err)))
		}
	} else if wrote {
		r.Metrics.DatabaseWrites.WithLabelValues("webhook_subscriptions").Inc()
	}
	if len(errs) > 0 {
		if err := r.patchStatus(ctx, original, sub); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
		return ctrl.Result{}, errors.Join(errs...)
	}
	return ctrl.Result{}, releaseFinalizer(ctx, r.Client, sub, webhookFinalizer)
}

func (r *WebhookSubscriptionReconciler) patchStatus(ctx context.Context, original, sub *integrationsv1.WebhookSubscription) error {
	return patchStatusIfChanged(ctx, r.Client, original, sub, original.Status, sub.Status)
}

func (r *WebhookSubscriptionReconciler) event(obj *integrationsv1.WebhookSubscription, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, eventType, reason, action, note, args...)
	}
}

// SetupWithManager registers the reconciler and its watches: the
// subscriptions, the Secrets they own, and the Secrets they import from.
func (r *WebhookSubscriptionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &integrationsv1.WebhookSubscription{}, importedSecretIndex,
		func(o client.Object) []string {
			spec := &o.(*integrationsv1.WebhookSubscription).Spec
			names := destinationSecretNames(spec)
			if ref := spec.SigningSecretRef; ref != nil {
				names = append(names, ref.Name)
			}
			return names
		})
	if err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&integrationsv1.WebhookSubscription{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.subscriptionsImporting), builder.OnlyMetadata)
	if r.Wake != nil {
		b = b.WatchesRawSource(source.Channel(r.Wake.c, &handler.EnqueueRequestForObject{}))
	}
	return b.WithOptions(controllerOptions(r.MaxConcurrentReconciles)).
		Named("webhooksubscription").
		Complete(r)
}

// subscriptionsImporting maps a Secret to the subscriptions that import from it.
func (r *WebhookSubscriptionReconciler) subscriptionsImporting(ctx context.Context, secret client.Object) []reconcile.Request {
	var subs integrationsv1.WebhookSubscriptionList
	if err := r.Client.List(ctx, &subs, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{importedSecretIndex: secret.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, len(subs.Items))
	for i, s := range subs.Items {
		reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}}
	}
	return reqs
}

// subscriptionReadiness summarises a subscription's conditions into Ready
// and Stalled. The reconciler and the status reporter both call it, so that
// neither undoes the other: a Healthy that no retry heals (410 Gone,
// rejected credentials) stalls the subscription too.
func subscriptionReadiness(sub *integrationsv1.WebhookSubscription, generation int64) {
	readyFrom := []string{ConditionSigningSecretSynced, ConditionDatabaseSynced}
	if meta.FindStatusCondition(sub.Status.Conditions, ConditionDestinationCredentialsSynced) != nil {
		readyFrom = append(readyFrom, ConditionDestinationCredentialsSynced)
	}
	setReady(&sub.Status.Conditions, generation, readyFrom...)
	markCredentialsInURL(sub, generation)
	setStalled(&sub.Status.Conditions, generation, append(readyFrom, ConditionHealthy)...)
}

// ReasonCredentialsInTargetURL marks a subscription stored before the CRD
// refused user info in targetURL.
const ReasonCredentialsInTargetURL = "CredentialsInTargetURL"

// markCredentialsInURL fills status.targetURL (the URL column) without user
// info, and marks a subscription whose targetURL has some not Ready. Its
// deliveries go on (the receiver may rely on that basic auth) until the
// spec is fixed; the CRD refuses such URLs for new objects and changes.
func markCredentialsInURL(sub *integrationsv1.WebhookSubscription, generation int64) {
	if sub.Spec.Kind() != integrationsv1.DestinationWebhook {
		// A queue's display form never holds credentials (they are in a Secret).
		_, sub.Status.TargetURL = storedDestination(&sub.Spec)
		return
	}
	sub.Status.TargetURL = sub.Spec.TargetURL
	u, err := url.Parse(sub.Spec.TargetURL)
	if err != nil {
		sub.Status.TargetURL = ""
		return
	}
	if u.User == nil {
		return
	}
	u.User = nil
	sub.Status.TargetURL = u.String()
	setCondition(&sub.Status.Conditions, generation, falseCondition(integrationsv1.ConditionReady, ReasonCredentialsInTargetURL,
		"targetURL contains credentials (user info), which anyone who can read this subscription sees; deliveries go on, "+
			"but remove them from targetURL and have the receiver verify the signature header (X-SS3-Signature, "+
			"or webhook-signature with signatureScheme: StandardWebhooks) instead"))
}

// webhookSecretPath is the design's path, relative to mount and prefix.
func webhookSecretPath(id uuid.UUID) string { return "webhook/" + id.String() + "/secret" }

func rateOf(l *integrationsv1.RateLimit) float64 {
	if l == nil {
		return 0
	}
	return float64(l.RequestsPerSecond)
}

func burstOf(l *integrationsv1.RateLimit) int {
	if l == nil {
		return 0
	}
	if l.Burst > 0 {
		return int(l.Burst)
	}
	return int(l.RequestsPerSecond)
}

func deliveryTimeout(sub *integrationsv1.WebhookSubscription) time.Duration {
	if sub.Spec.DeliveryTimeout != nil {
		return sub.Spec.DeliveryTimeout.Duration
	}
	return 30 * time.Second
}

func gracePeriod(sub *integrationsv1.WebhookSubscription) time.Duration {
	if sub.Spec.RotationGracePeriod != nil {
		return sub.Spec.RotationGracePeriod.Duration
	}
	return defaultGracePeriod
}

func vaultCondition(condType, doing string, err error) metav1.Condition {
	reason := ReasonVaultError
	if vault.IsUnavailable(err) {
		reason = ReasonVaultUnavailable
	}
	return falseCondition(condType, reason, fmt.Sprintf("%s: %v", doing, err))
}
