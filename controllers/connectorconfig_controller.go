package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/registry"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// Condition types and reasons of a ConnectorConfig.
const (
	ConditionCredentialsSynced = "CredentialsSynced"

	ReasonSettingsRejected         = "SettingsRejected"
	ReasonUnknownConnectorType     = "UnknownConnectorType"
	ReasonCredentialsNotFound      = "CredentialsSecretNotFound"
	ReasonCredentialsKeyMissing    = "CredentialsKeyMissing"
	connectorFinalizer             = "integrations.ss3.dev/connector-cleanup"
	credentialsSecretRefIndex      = "spec.credentialsSecretRef.name"
	kindConnectorConfig            = "ConnectorConfig"
	defaultConnectorResyncInterval = 10 * time.Minute
)

// sensitiveWords in a settings key mean a credential was put where only
// non-sensitive options belong.
var sensitiveWords = []string{"secret", "password", "passwd", "token", "apikey", "api_key", "api-key", "privatekey", "private_key", "private-key", "credential"}

// ConnectorConfigReconciler keeps, for each ConnectorConfig, a
// connector_configs row (non-sensitive settings only) and the referenced
// Secret's API key and secret copied into Vault, re-copied when the Secret
// changes, and removes them on deletion.
type ConnectorConfigReconciler struct {
	Client                  client.Client
	APIReader               client.Reader
	Store                   *store.Store
	Vault                   *vault.Client
	Recorder                events.EventRecorder
	Metrics                 *Metrics
	ResyncInterval          time.Duration
	MaxConcurrentReconciles int
}

// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=connectorconfigs,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=connectorconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=integrations.ss3.dev,resources=connectorconfigs/finalizers,verbs=update

// Reconcile brings one connector's row and Vault credentials in line with its spec.
func (r *ConnectorConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cc integrationsv1.ConnectorConfig
	id, found, deleting, err := fetchForReconcile(ctx, r.Client, r.Client, req.NamespacedName, &cc, connectorFinalizer)
	switch {
	case err != nil || !found:
		return ctrl.Result{}, err
	case deleting:
		return r.finalize(ctx, &cc, id)
	}
	original := cc.DeepCopy()
	cc.Status.ConfigID = id.String()
	cc.Status.WebhookPath = ""

	reg, known := registry.Lookup(string(cc.Spec.ConnectorType))
	if !known {
		// The CRD's enum lists the types; a manager older than the CRD can
		// still meet one it has no adapter for.
		msg := fmt.Sprintf("this operator has no adapter for connector type %q; it knows %s",
			cc.Spec.ConnectorType, strings.Join(registry.Types(), ", "))
		setCondition(&cc.Status.Conditions, cc.Generation, falseCondition(integrationsv1.ConditionReady, ReasonUnknownConnectorType, msg))
		setStalled(&cc.Status.Conditions, cc.Generation)
		cc.Status.ObservedGeneration = cc.Generation
		if err := patchStatusIfChanged(ctx, r.Client, original, &cc, original.Status, cc.Status); err != nil {
			return conflictRetry(err)
		}
		return ctrl.Result{}, nil
	}
	settings := settingsJSON(cc.Spec.Settings)
	adapter, settingsErr := reg.New(connectors.Config{ID: id, StoreID: string(cc.Spec.StoreID), Settings: settings})
	if _, receives := adapter.(connectors.Receiver); receives {
		cc.Status.WebhookPath = "/connectors/" + id.String() + "/webhook"
	}

	credCond, credErr := r.syncCredentials(ctx, &cc, id, reg.Credentials)
	setCondition(&cc.Status.Conditions, cc.Generation, credCond)
	dbCond, dbErr := r.syncRow(ctx, &cc, id, settings, adapter, settingsErr)
	setCondition(&cc.Status.Conditions, cc.Generation, dbCond)
	if dbErr == nil {
		cc.Status.LastRetrigger, dbErr = retriggerDeadLetters(&cc, cc.Status.LastRetrigger, r.Recorder, "events for the marketplace",
			func(since *time.Time) (int64, error) {
				n, err := r.Store.RequeueDeadLetteredConnector(ctx, id, since)
				r.Metrics.DatabaseWrites.WithLabelValues("connector_deliveries").Add(float64(n))
				return n, err
			})
	}
	setReady(&cc.Status.Conditions, cc.Generation, ConditionDatabaseSynced, ConditionCredentialsSynced)
	setStalled(&cc.Status.Conditions, cc.Generation, ConditionDatabaseSynced, ConditionCredentialsSynced)
	cc.Status.ObservedGeneration = cc.Generation
	if err := patchStatusIfChanged(ctx, r.Client, original, &cc, original.Status, cc.Status); err != nil {
		return conflictRetry(err)
	}
	if err := errors.Join(credErr, dbErr); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: jitter(orDefault(r.ResyncInterval, defaultConnectorResyncInterval))}, nil
}

// syncRow stores the spec, refusing settings whose keys name a credential
// or that the adapter rejects, and event subscriptions it cannot handle;
// while refused, the row keeps the last accepted spec.
func (r *ConnectorConfigReconciler) syncRow(ctx context.Context, cc *integrationsv1.ConnectorConfig, id uuid.UUID,
	settings json.RawMessage, adapter connectors.Adapter, settingsErr error) (metav1.Condition, error) {
	if keys := sensitiveKeys(cc.Spec.Settings); len(keys) > 0 {
		return falseCondition(ConditionDatabaseSynced, ReasonSettingsRejected, fmt.Sprintf(
			"settings must not hold credentials, but these keys look like some: %s; put them in the Secret named by credentialsSecretRef",
			strings.Join(keys, ", "))), nil
	}
	if settingsErr != nil {
		return falseCondition(ConditionDatabaseSynced, ReasonSettingsRejected, fmt.Sprintf("the %s adapter rejects the settings: %v",
			cc.Spec.ConnectorType, settingsErr)), nil
	}
	if unhandled := unhandledEvents(cc.Spec.EventSubscriptions, adapter.Handles()); len(unhandled) > 0 {
		handles := strings.Join(adapter.Handles(), ", ")
		if handles == "" {
			handles = "no platform events (it only receives the provider's webhooks)"
		}
		return falseCondition(ConditionDatabaseSynced, ReasonSettingsRejected, fmt.Sprintf(
			"eventSubscriptions %s match nothing the %s adapter handles; it handles %s",
			strings.Join(unhandled, ", "), cc.Spec.ConnectorType, handles)), nil
	}
	var pollInterval time.Duration
	if cc.Spec.PollInterval != nil {
		pollInterval = cc.Spec.PollInterval.Duration
	}
	events := make([]string, len(cc.Spec.EventSubscriptions))
	for i, e := range cc.Spec.EventSubscriptions {
		events[i] = string(e)
	}
	wrote, err := r.Store.UpsertConnectorConfig(ctx, store.ConnectorConfig{ID: id, StoreID: string(cc.Spec.StoreID),
		ConnectorType: string(cc.Spec.ConnectorType), DisplayName: cc.Spec.DisplayName, IsActive: cc.Spec.IsActive(),
		EventSubscriptions: events, Settings: settings, PollInterval: pollInterval})
	if err != nil {
		return falseCondition(ConditionDatabaseSynced, ReasonDatabaseUnavailable, fmt.Sprintf("writing the connector_configs row: %v", err)), err
	}
	if wrote {
		r.Metrics.DatabaseWrites.WithLabelValues("connector_configs").Inc()
	}
	return trueCondition(ConditionDatabaseSynced, "connector_configs row matches the spec"), nil
}

// syncCredentials copies the credentials the adapter needs from the
// referenced Secret into Vault, writing only what differs.
func (r *ConnectorConfigReconciler) syncCredentials(ctx context.Context, cc *integrationsv1.ConnectorConfig, id uuid.UUID,
	needed []string) (metav1.Condition, error) {
	ref := cc.Spec.CredentialsSecretRef
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: cc.Namespace, Name: ref.Name}, &secret)
	if apierrors.IsNotFound(err) {
		return falseCondition(ConditionCredentialsSynced, ReasonCredentialsNotFound, fmt.Sprintf(
			"Secret %s named by credentialsSecretRef does not exist in namespace %s", ref.Name, cc.Namespace)), nil
	}
	if err != nil {
		return falseCondition(ConditionCredentialsSynced, ReasonKubernetesError, fmt.Sprintf("reading Secret %s: %v", ref.Name, err)), err
	}
	keys := map[string]string{connectors.CredentialAPIKey: orString(ref.APIKeyKey, "api-key"),
		connectors.CredentialAPISecret:    orString(ref.APISecretKey, "api-secret"),
		connectors.CredentialRefreshToken: orString(ref.RefreshTokenKey, "refresh-token")}
	want := map[string]string{}
	for _, path := range needed {
		key := keys[path]
		v, ok := secret.Data[key]
		if !ok || len(v) == 0 {
			return falseCondition(ConditionCredentialsSynced, ReasonCredentialsKeyMissing, fmt.Sprintf(
				"Secret %s has no key %q, which a %s connector needs (its %s)", ref.Name, key, cc.Spec.ConnectorType, path)), nil
		}
		want[path] = string(v)
	}
	for _, path := range needed {
		full := connectorPath(id, path)
		have, _, err := r.Vault.Get(ctx, full)
		if err != nil && !errors.Is(err, vault.ErrNotFound) {
			return vaultCondition(ConditionCredentialsSynced, "reading the connector's credentials", err), err
		}
		if err == nil && sameSecret(have["value"], want[path]) && len(have) == 1 {
			continue
		}
		if _, err := r.Vault.Put(ctx, full, map[string]string{"value": want[path]}); err != nil {
			return vaultCondition(ConditionCredentialsSynced, "writing the connector's credentials", err), err
		}
		r.Metrics.VaultWrites.WithLabelValues(kindConnectorConfig, "put").Inc()
	}
	return trueCondition(ConditionCredentialsSynced, fmt.Sprintf("credentials from Secret %s are in Vault at %s/{%s}",
		ref.Name, r.Vault.Path(connectorPath(id, "")), strings.Join(needed, ","))), nil
}

// finalize removes the credentials from Vault and deactivates the row.
func (r *ConnectorConfigReconciler) finalize(ctx context.Context, cc *integrationsv1.ConnectorConfig, id uuid.UUID) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(cc, connectorFinalizer) {
		return ctrl.Result{}, nil
	}
	original := cc.DeepCopy()
	var errs []error
	for _, path := range []string{connectors.CredentialAPIKey, connectors.CredentialAPISecret, connectors.CredentialRefreshToken} {
		if err := r.Vault.Delete(ctx, connectorPath(id, path)); err != nil {
			errs = append(errs, err)
			c := vaultCondition(integrationsv1.ConditionReady, "deleting the connector's credentials", err)
			c.Message = "Deleting: " + c.Message
			setCondition(&cc.Status.Conditions, cc.Generation, c)
			break
		}
	}
	if _, err := r.Store.DeactivateConnectorConfig(ctx, id); err != nil {
		errs = append(errs, err)
		setCondition(&cc.Status.Conditions, cc.Generation, falseCondition(integrationsv1.ConditionReady, ReasonDatabaseUnavailable,
			fmt.Sprintf("Deleting: waiting for the database to deactivate the connector: %v", err)))
	}
	if len(errs) > 0 {
		if err := patchStatusIfChanged(ctx, r.Client, original, cc, original.Status, cc.Status); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
		return ctrl.Result{}, errors.Join(errs...)
	}
	return ctrl.Result{}, releaseFinalizer(ctx, r.Client, cc, connectorFinalizer)
}

// SetupWithManager registers the reconciler, watching the connectors and
// (metadata only) the Secrets they read credentials from.
func (r *ConnectorConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	err := mgr.GetFieldIndexer().IndexField(context.Background(), &integrationsv1.ConnectorConfig{}, credentialsSecretRefIndex,
		func(o client.Object) []string {
			return []string{o.(*integrationsv1.ConnectorConfig).Spec.CredentialsSecretRef.Name}
		})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&integrationsv1.ConnectorConfig{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.connectorsReading), builder.OnlyMetadata).
		WithOptions(controllerOptions(r.MaxConcurrentReconciles)).
		Named("connectorconfig").
		Complete(r)
}

func (r *ConnectorConfigReconciler) connectorsReading(ctx context.Context, secret client.Object) []reconcile.Request {
	var list integrationsv1.ConnectorConfigList
	if err := r.Client.List(ctx, &list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{credentialsSecretRefIndex: secret.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i, c := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}}
	}
	return reqs
}

// connectorPath is the design's path, relative to mount and prefix.
func connectorPath(id uuid.UUID, leaf string) string {
	return strings.TrimSuffix("connector/"+id.String()+"/"+leaf, "/")
}

// sensitiveKeys lists settings keys, at any depth, that name a credential.
func sensitiveKeys(settings map[string]apiextensionsv1.JSON) []string {
	var found []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, child := range t {
				lower := strings.ToLower(k)
				for _, w := range sensitiveWords {
					if strings.Contains(lower, w) {
						found = append(found, prefix+k)
						break
					}
				}
				walk(prefix+k+".", child)
			}
		case []any:
			for _, child := range t {
				walk(prefix, child)
			}
		}
	}
	top := map[string]any{}
	for k, raw := range settings {
		var v any
		_ = json.Unmarshal(raw.Raw, &v)
		top[k] = v
	}
	walk("", top)
	sort.Strings(found)
	return found
}

// settingsJSON is the settings as one JSON object.
func settingsJSON(settings map[string]apiextensionsv1.JSON) json.RawMessage {
	b, err := json.Marshal(settings)
	if err != nil || string(b) == "null" {
		return json.RawMessage(`{}`)
	}
	return b
}

// unhandledEvents lists subscriptions (exact or `resource.*`) that match
// none of the event types the adapter handles.
func unhandledEvents(subscriptions []integrationsv1.EventType, handles []string) []string {
	var out []string
	for _, sub := range subscriptions {
		prefix, wildcard := strings.CutSuffix(string(sub), "*")
		if !slices.ContainsFunc(handles, func(h string) bool { return h == string(sub) || wildcard && strings.HasPrefix(h, prefix) }) {
			out = append(out, string(sub))
		}
	}
	return out
}

func orString(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
