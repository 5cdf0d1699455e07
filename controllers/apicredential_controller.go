package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/credentials"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Condition types of an ApiCredential besides Ready.
const (
	ConditionSecretDelivered = "SecretDelivered"
	ConditionExpired         = "Expired"
)

// ApiCredential condition reasons.
const (
	ReasonDelivered          = "Delivered"
	ReasonPlainSecretDeleted = "PlainSecretDeleted"
	ReasonExpired            = "Expired"
	ReasonNotExpired         = "NotExpired"
	ReasonNoExpiry           = "NoExpiry"
)

// Keys of the Secret that receives the plain credential.
const (
	SecretKeyClientID     = "client-id"
	SecretKeyAPIKey       = "api-key"
	SecretKeyClientSecret = "client-secret"
)

// errSecretNotOurs: the named Secret belongs to someone else, so nothing is issued.
var errSecretNotOurs = errors.New("the named Secret is not owned by this ApiCredential")

const (
	credentialFinalizer         = "integrations.ss3.dev/credential-revoke"
	defaultCredentialStatusSync = 5 * time.Minute
)

// ApiCredentialReconciler issues each ApiCredential's client id and secret
// once (the bcrypt hash to Postgres, the plain secret to the named Secret),
// keeps the row in line with the spec, rotates on request, revokes on
// deletion, and syncs last use onto the status.
type ApiCredentialReconciler struct {
	Client client.Client
	// APIReader reads the named Secret's metadata uncached; the operator
	// never reads a plain secret back.
	APIReader  client.Reader
	Store      *store.Store
	Recorder   events.EventRecorder
	Metrics    *Metrics
	Clock      clock.PassiveClock
	BcryptCost int
	// StatusSyncInterval is how often last use and expiry are brought onto the status.
	StatusSyncInterval      time.Duration
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=apicredentials,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=apicredentials/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=apicredentials/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch

// Reconcile issues, updates, rotates or revokes one credential.
func (r *ApiCredentialReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cred integrationsv1.ApiCredential
	id, found, deleting, err := fetchForReconcile(ctx, r.Client, r.Client, req.NamespacedName, &cred, credentialFinalizer)
	switch {
	case err != nil || !found:
		return ctrl.Result{}, err
	case deleting:
		return r.revoke(ctx, &cred, id)
	}
	original := cred.DeepCopy()
	now := r.Clock.Now()
	cred.Status.CredentialID = id.String()

	row, err := r.syncRow(ctx, &cred, id, now)
	readyFrom := []string{ConditionDatabaseSynced}
	retryAfter := time.Duration(0)
	switch {
	case errors.Is(err, errSecretNotOurs):
		// Waiting for the user to free the name; the condition says so.
		readyFrom = []string{ConditionSecretDelivered, ConditionDatabaseSynced}
		retryAfter, err = 30*time.Second, nil
	case err != nil:
		setCondition(&cred.Status.Conditions, cred.Generation, falseCondition(ConditionDatabaseSynced, ReasonDatabaseUnavailable, err.Error()))
	}
	if row != nil {
		setCondition(&cred.Status.Conditions, cred.Generation, trueCondition(ConditionDatabaseSynced, "api_credentials row matches the spec"))
		r.reportRow(&cred, row)
		delivered, derr := r.secretDeliveredCondition(ctx, &cred)
		err = errors.Join(err, derr)
		setCondition(&cred.Status.Conditions, cred.Generation, delivered)
	}
	expired := r.expiredCondition(&cred, now)
	setCondition(&cred.Status.Conditions, cred.Generation, expired)
	setReady(&cred.Status.Conditions, cred.Generation, readyFrom...)
	if expired.Status == metav1.ConditionTrue {
		setCondition(&cred.Status.Conditions, cred.Generation, falseCondition(integrationsv1.ConditionReady, ReasonExpired, expired.Message))
	}
	setStalled(&cred.Status.Conditions, cred.Generation, readyFrom...)
	cred.Status.ObservedGeneration = cred.Generation
	if perr := patchStatusIfChanged(ctx, r.Client, original, &cred, original.Status, cred.Status); perr != nil {
		if err == nil {
			return conflictRetry(perr)
		}
		return ctrl.Result{}, errors.Join(err, perr)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if retryAfter > 0 {
		return ctrl.Result{RequeueAfter: retryAfter}, nil
	}
	return ctrl.Result{RequeueAfter: r.nextCheck(&cred, now)}, nil
}

// syncRow issues the credential on first sight, and afterwards keeps the row
// in line with the spec, rotates on request and forgets an expired previous
// secret. It returns the row as it now is, or nil when there is none yet.
func (r *ApiCredentialReconciler) syncRow(ctx context.Context, cred *integrationsv1.ApiCredential, id uuid.UUID, now time.Time) (*store.Credential, error) {
	row, ok, err := r.Store.GetCredential(ctx, id)
	if err != nil {
		return nil, err
	}
	requested := cred.Annotations[integrationsv1.RotateCredentialAnnotation]
	if !ok {
		return r.issue(ctx, cred, id, now, requested)
	}
	if row.RevokedAt != nil {
		return &row, nil
	}
	spec := r.rowFromSpec(cred, id)
	if wrote, err := r.Store.UpdateCredentialSpec(ctx, spec); err != nil {
		return nil, err
	} else if wrote {
		r.Metrics.DatabaseWrites.WithLabelValues("api_credentials").Inc()
	}
	if requested != "" && requested != row.RotationRequest {
		if err := r.rotate(ctx, cred, &row, now, requested); err != nil {
			return nil, err
		}
	}
	if row.PreviousExpiresAt != nil && !now.Before(*row.PreviousExpiresAt) {
		if wrote, err := r.Store.ExpirePreviousSecret(ctx, id, now); err != nil {
			return nil, err
		} else if wrote {
			r.Metrics.DatabaseWrites.WithLabelValues("api_credentials").Inc()
			r.event(cred, corev1.EventTypeNormal, "PreviousSecretExpired", "Expire", "the secret replaced by the last rotation is no longer accepted")
		}
	}
	updated, _, err := r.Store.GetCredential(ctx, id)
	if err != nil {
		return nil, err
	}
	return &updated, nil
}

// issue creates the credential: the plain secret goes once into the named
// Secret, then the hash into Postgres. If the insert fails the next attempt
// issues afresh and overwrites the Secret, whose secret never became valid.
func (r *ApiCredentialReconciler) issue(ctx context.Context, cred *integrationsv1.ApiCredential, id uuid.UUID, now time.Time, requested string) (*store.Credential, error) {
	if conflict, err := r.secretConflict(ctx, cred); err != nil || conflict != nil {
		if conflict != nil {
			setCondition(&cred.Status.Conditions, cred.Generation, *conflict)
			return nil, errSecretNotOurs
		}
		return nil, err
	}
	var issued credentials.Issued
	var err error
	if cred.Spec.Type == integrationsv1.CredentialTypeOAuthClient {
		issued, err = credentials.NewOAuthClient()
	} else {
		issued, err = credentials.NewAPIKey()
	}
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(issued.Secret), r.bcryptCost())
	if err != nil {
		return nil, fmt.Errorf("hash secret: %w", err)
	}
	if err := r.deliver(ctx, cred, issued); err != nil {
		return nil, err
	}
	row := r.rowFromSpec(cred, id)
	row.ClientID = issued.ClientID
	row.HashedSecret = string(hash)
	row.SecretFingerprint = credentials.Fingerprint(issued.ClientID, issued.Secret)
	row.IssuedAt = now
	row.RotationRequest = requested // a request present at creation is already answered
	row.CreatedBy = fmt.Sprintf("integration-operator/%s/%s", cred.Namespace, cred.Name)
	if err := r.Store.InsertCredential(ctx, row); err != nil {
		return nil, err
	}
	r.Metrics.DatabaseWrites.WithLabelValues("api_credentials").Inc()
	r.event(cred, corev1.EventTypeNormal, "CredentialIssued", "Issue", "issued client id %s; the plain secret is in Secret %s", issued.ClientID, cred.Spec.SecretName)
	return &row, nil
}

func (r *ApiCredentialReconciler) rotate(ctx context.Context, cred *integrationsv1.ApiCredential, row *store.Credential, now time.Time, requested string) error {
	if conflict, err := r.secretConflict(ctx, cred); err != nil || conflict != nil {
		if conflict != nil {
			// The credential keeps working; SecretDelivered reports the conflict.
			r.event(cred, corev1.EventTypeWarning, "RotationBlocked", "Rotate", "%s", conflict.Message)
		}
		return err
	}
	var issued credentials.Issued
	var err error
	if row.Type == store.CredentialTypeOAuthClient {
		issued, err = credentials.RotateOAuthClient(row.ClientID)
	} else {
		issued, err = credentials.RotateAPIKey(row.ClientID)
	}
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(issued.Secret), r.bcryptCost())
	if err != nil {
		return fmt.Errorf("hash secret: %w", err)
	}
	if err := r.deliver(ctx, cred, issued); err != nil {
		return err
	}
	grace := 24 * time.Hour
	if cred.Spec.RotationGracePeriod != nil {
		grace = cred.Spec.RotationGracePeriod.Duration
	}
	if err := r.Store.RotateCredential(ctx, row.ID, store.Rotation{Hash: string(hash), Fingerprint: credentials.Fingerprint(row.ClientID, issued.Secret),
		PreviousExpiresAt: now.Add(grace), IssuedAt: now, Request: requested}); err != nil {
		return err
	}
	r.Metrics.DatabaseWrites.WithLabelValues("api_credentials").Inc()
	r.event(cred, corev1.EventTypeNormal, "CredentialRotated", "Rotate",
		"issued a new secret into Secret %s; the previous one is accepted until %s", cred.Spec.SecretName, now.Add(grace).UTC().Format(time.RFC3339))
	return nil
}

// deliver writes the plain credential into the named Secret, creating it or
// patching its data without reading what was there.
func (r *ApiCredentialReconciler) deliver(ctx context.Context, cred *integrationsv1.ApiCredential, issued credentials.Issued) error {
	data := map[string][]byte{SecretKeyClientID: []byte(issued.ClientID)}
	if cred.Spec.Type == integrationsv1.CredentialTypeOAuthClient {
		data[SecretKeyClientSecret] = []byte(issued.Presented)
	} else {
		data[SecretKeyAPIKey] = []byte(issued.Presented)
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: cred.Spec.SecretName, Namespace: cred.Namespace,
			Labels: map[string]string{managedByLabel: managedByValue}},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
	if err := controllerutil.SetControllerReference(cred, secret, r.Client.Scheme()); err != nil {
		return err
	}
	err := r.Client.Create(ctx, secret)
	if apierrors.IsAlreadyExists(err) {
		// The owner reference too: a Secret left by a deleted ApiCredential
		// becomes this one's (secretConflict let only ours or such through).
		patch, merr := json.Marshal(map[string]any{"data": data,
			"metadata": map[string]any{"ownerReferences": secret.OwnerReferences, "labels": secret.Labels}})
		if merr != nil {
			return merr
		}
		err = r.Client.Patch(ctx, secret, client.RawPatch(types.MergePatchType, patch))
	}
	if err != nil {
		return fmt.Errorf("write Secret %s: %w", cred.Spec.SecretName, err)
	}
	return nil
}

// secretConflict returns a condition when the named Secret exists and is not
// ours: we never overwrite a Secret we do not own.
func (r *ApiCredentialReconciler) secretConflict(ctx context.Context, cred *integrationsv1.ApiCredential) (*metav1.Condition, error) {
	meta, err := r.secretMetadata(ctx, cred)
	if err != nil || meta == nil || metav1.IsControlledBy(meta, cred) {
		return nil, err
	}
	// A Secret a deleted ApiCredential left (no garbage collector took it)
	// is taken over: deliver writes this one as its owner.
	if stale, err := leftByDeletedOwner(ctx, r.APIReader, r.Client.Scheme(), meta, cred); err != nil || stale {
		return nil, err
	}
	c := falseCondition(ConditionSecretDelivered, ReasonSecretNameConflict, fmt.Sprintf(
		"Secret %s exists and is not owned by this ApiCredential; delete it or choose another secretName", cred.Spec.SecretName))
	return &c, nil
}

func (r *ApiCredentialReconciler) secretDeliveredCondition(ctx context.Context, cred *integrationsv1.ApiCredential) (metav1.Condition, error) {
	meta, err := r.secretMetadata(ctx, cred)
	if err != nil {
		return falseCondition(ConditionSecretDelivered, ReasonKubernetesError, fmt.Sprintf("reading Secret %s: %v", cred.Spec.SecretName, err)), err
	}
	switch {
	case meta == nil:
		return falseCondition(ConditionSecretDelivered, ReasonPlainSecretDeleted, fmt.Sprintf(
			"Secret %s was deleted; the credential keeps working, but its plain secret can only be had again by rotating (annotate %s=<new value>)",
			cred.Spec.SecretName, integrationsv1.RotateCredentialAnnotation)), nil
	case !metav1.IsControlledBy(meta, cred):
		return falseCondition(ConditionSecretDelivered, ReasonSecretNameConflict, fmt.Sprintf(
			"Secret %s has been replaced by one this ApiCredential does not own; the credential keeps working", cred.Spec.SecretName)), nil
	}
	return metav1.Condition{Type: ConditionSecretDelivered, Status: metav1.ConditionTrue, Reason: ReasonDelivered,
		Message: fmt.Sprintf("the plain secret was delivered to Secret %s", cred.Spec.SecretName)}, nil
}

// secretMetadata reads only the named Secret's metadata, or nil when it does not exist.
func (r *ApiCredentialReconciler) secretMetadata(ctx context.Context, cred *integrationsv1.ApiCredential) (*metav1.PartialObjectMetadata, error) {
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: cred.Namespace, Name: cred.Spec.SecretName}, meta)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return meta, nil
}

func (r *ApiCredentialReconciler) rowFromSpec(cred *integrationsv1.ApiCredential, id uuid.UUID) store.Credential {
	scopes := make([]string, len(cred.Spec.Scopes))
	for i, s := range cred.Spec.Scopes {
		scopes[i] = string(s)
	}
	slices.Sort(scopes)
	name := cred.Spec.DisplayName
	if name == "" {
		name = cred.Name
	}
	typ := store.CredentialTypeAPIKey
	if cred.Spec.Type == integrationsv1.CredentialTypeOAuthClient {
		typ = store.CredentialTypeOAuthClient
	}
	var expires *time.Time
	if cred.Spec.ExpiresAt != nil {
		t := cred.Spec.ExpiresAt.UTC()
		expires = &t
	}
	return store.Credential{ID: id, StoreID: string(cred.Spec.StoreID), Name: name, Type: typ, Scopes: scopes,
		IsActive: cred.Spec.IsActive(), ExpiresAt: expires}
}

// reportRow copies what the row says onto the status (never the hash).
func (r *ApiCredentialReconciler) reportRow(cred *integrationsv1.ApiCredential, row *store.Credential) {
	cred.Status.ClientID = row.ClientID
	cred.Status.IssuedAt = timePtr(&row.IssuedAt)
	cred.Status.ExpiresAt = timePtr(row.ExpiresAt)
	cred.Status.LastUsedAt = timePtr(row.LastUsedAt)
	cred.Status.PreviousSecretExpiresAt = timePtr(row.PreviousExpiresAt)
	cred.Status.LastRotationRequest = row.RotationRequest
}

func (r *ApiCredentialReconciler) expiredCondition(cred *integrationsv1.ApiCredential, now time.Time) metav1.Condition {
	if cred.Spec.ExpiresAt == nil {
		return metav1.Condition{Type: ConditionExpired, Status: metav1.ConditionFalse, Reason: ReasonNoExpiry, Message: "the credential does not expire"}
	}
	at := cred.Spec.ExpiresAt.UTC().Format(time.RFC3339)
	if now.Before(cred.Spec.ExpiresAt.Time) {
		return metav1.Condition{Type: ConditionExpired, Status: metav1.ConditionFalse, Reason: ReasonNotExpired, Message: "the credential expires at " + at}
	}
	return metav1.Condition{Type: ConditionExpired, Status: metav1.ConditionTrue, Reason: ReasonExpired,
		Message: "the credential expired at " + at + " and is refused; extend spec.expiresAt to accept it again"}
}

// nextCheck is when the status next needs a look: the periodic last-use
// sync, or sooner when the credential or a previous secret expires.
func (r *ApiCredentialReconciler) nextCheck(cred *integrationsv1.ApiCredential, now time.Time) time.Duration {
	next := jitter(orDefault(r.StatusSyncInterval, defaultCredentialStatusSync))
	for _, t := range []*metav1.Time{cred.Spec.ExpiresAt, cred.Status.PreviousSecretExpiresAt} {
		if t != nil && t.After(now) && t.Sub(now) < next {
			next = t.Sub(now) + time.Second
		}
	}
	return next
}

// revoke deactivates the credential for good, then releases the object.
func (r *ApiCredentialReconciler) revoke(ctx context.Context, cred *integrationsv1.ApiCredential, id uuid.UUID) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(cred, credentialFinalizer) {
		return ctrl.Result{}, nil
	}
	wrote, err := r.Store.RevokeCredential(ctx, id)
	if err != nil {
		original := cred.DeepCopy()
		setCondition(&cred.Status.Conditions, cred.Generation, falseCondition(integrationsv1.ConditionReady, ReasonDatabaseUnavailable,
			fmt.Sprintf("Deleting: waiting for the database to revoke the credential: %v", err)))
		if perr := patchStatusIfChanged(ctx, r.Client, original, cred, original.Status, cred.Status); perr != nil && !apierrors.IsNotFound(perr) {
			err = errors.Join(err, perr)
		}
		return ctrl.Result{}, err
	}
	if wrote {
		r.Metrics.DatabaseWrites.WithLabelValues("api_credentials").Inc()
	}
	return ctrl.Result{}, releaseFinalizer(ctx, r.Client, cred, credentialFinalizer)
}

func (r *ApiCredentialReconciler) bcryptCost() int {
	if r.BcryptCost == 0 {
		return 12
	}
	return r.BcryptCost
}

func (r *ApiCredentialReconciler) event(obj *integrationsv1.ApiCredential, eventType, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, eventType, reason, action, note, args...)
	}
}

// SetupWithManager registers the reconciler; it watches the Secrets it owns
// (metadata only) so a deleted Secret shows on the status at once.
func (r *ApiCredentialReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&integrationsv1.ApiCredential{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		WithOptions(controllerOptions(r.MaxConcurrentReconciles)).
		Named("apicredential").
		Complete(r)
}

func timePtr(t *time.Time) *metav1.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}
