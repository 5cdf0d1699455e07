package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// ConditionDestinationCredentialsSynced is True when the credentials a
// queue destination needs (an IAM access key, a broker login) are in Vault.
const ConditionDestinationCredentialsSynced = "DestinationCredentialsSynced"

// destinationPath is where a subscription's destination credentials live,
// relative to mount and prefix.
func destinationPath(id uuid.UUID) string { return "webhook/" + id.String() + "/destination" }

// storedDestination is the row's destination and display URL for the spec.
func storedDestination(spec *integrationsv1.WebhookSubscriptionSpec) (*store.Destination, string) {
	switch spec.Kind() {
	case integrationsv1.DestinationSQS:
		q := spec.Destination.SQS
		return &store.Destination{Kind: store.DestinationSQS, SQS: &store.SQSDestination{
			Region: q.Region, QueueURL: q.QueueURL, MessageGroupID: q.MessageGroupID}}, q.QueueURL
	case integrationsv1.DestinationSTOMP:
		s := spec.Destination.STOMP
		scheme := "stomp"
		if s.TLS {
			scheme = "stomp+ssl"
		}
		display := (&url.URL{Scheme: scheme, Host: s.Address, Path: "/" + strings.TrimPrefix(s.Destination, "/")}).String()
		return &store.Destination{Kind: store.DestinationSTOMP, STOMP: &store.STOMPDestination{
			Address: s.Address, TLS: s.TLS, Login: s.LoginSecretRef != nil, Destination: s.Destination, Headers: s.Headers}}, display
	}
	return nil, spec.TargetURL
}

// destinationSecretNames lists the Secrets the destination reads credentials from.
func destinationSecretNames(spec *integrationsv1.WebhookSubscriptionSpec) []string {
	switch spec.Kind() {
	case integrationsv1.DestinationSQS:
		return []string{spec.Destination.SQS.CredentialsSecretRef.Name}
	case integrationsv1.DestinationSTOMP:
		if ref := spec.Destination.STOMP.LoginSecretRef; ref != nil {
			return []string{ref.Name}
		}
	}
	return nil
}

// syncDestination copies the destination's credentials from the referenced
// Secret into Vault (writing only what differs), or removes them when the
// subscription no longer has a destination that needs them. Their values
// never appear in a condition: at most their last four characters.
func (r *WebhookSubscriptionReconciler) syncDestination(ctx context.Context, sub *integrationsv1.WebhookSubscription, id uuid.UUID) (*metav1.Condition, error) {
	path := destinationPath(id)
	var secretName string
	keys := map[string]string{} // Vault field -> Secret key
	switch sub.Spec.Kind() {
	case integrationsv1.DestinationSQS:
		ref := sub.Spec.Destination.SQS.CredentialsSecretRef
		secretName = ref.Name
		keys[destinations.FieldAccessKeyID] = orString(ref.AccessKeyIDKey, "access-key-id")
		keys[destinations.FieldSecretAccessKey] = orString(ref.SecretAccessKeyKey, "secret-access-key")
	case integrationsv1.DestinationSTOMP:
		if ref := sub.Spec.Destination.STOMP.LoginSecretRef; ref != nil {
			secretName = ref.Name
			keys[destinations.FieldLogin] = orString(ref.LoginKey, "login")
			keys[destinations.FieldPasscode] = orString(ref.PasscodeKey, "passcode")
		}
	}
	if secretName == "" {
		if meta.FindStatusCondition(sub.Status.Conditions, ConditionDestinationCredentialsSynced) == nil {
			return nil, nil
		}
		// The destination changed to one without credentials: none stay behind.
		if err := r.Vault.Delete(ctx, path); err != nil {
			c := vaultCondition(ConditionDestinationCredentialsSynced, "deleting the destination's former credentials", err)
			return &c, err
		}
		meta.RemoveStatusCondition(&sub.Status.Conditions, ConditionDestinationCredentialsSynced)
		return nil, nil
	}
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: sub.Namespace, Name: secretName}, &secret)
	if apierrors.IsNotFound(err) {
		c := falseCondition(ConditionDestinationCredentialsSynced, ReasonSecretRefNotFound,
			fmt.Sprintf("Secret %s named by the destination does not exist in namespace %s", secretName, sub.Namespace))
		return &c, nil
	}
	if err != nil {
		c := falseCondition(ConditionDestinationCredentialsSynced, ReasonKubernetesError, fmt.Sprintf("reading Secret %s: %v", secretName, err))
		return &c, err
	}
	want := map[string]string{}
	for field, key := range keys {
		v := secret.Data[key]
		if len(v) == 0 {
			c := falseCondition(ConditionDestinationCredentialsSynced, ReasonSecretRefKeyMissing,
				fmt.Sprintf("Secret %s has no key %q, which the destination needs", secretName, key))
			return &c, nil
		}
		want[field] = string(v)
	}
	have, _, err := r.Vault.Get(ctx, path)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		c := vaultCondition(ConditionDestinationCredentialsSynced, "reading the destination's credentials", err)
		return &c, err
	}
	if err != nil || !sameSecretData(have, want) {
		if _, err := r.Vault.Put(ctx, path, want); err != nil {
			c := vaultCondition(ConditionDestinationCredentialsSynced, "writing the destination's credentials", err)
			return &c, err
		}
		r.Metrics.VaultWrites.WithLabelValues(kindWebhookSubscription, "put").Inc()
	}
	shown := ""
	if id := want[destinations.FieldAccessKeyID]; id != "" {
		shown = " (access key " + destinations.Mask(id) + ")"
	} else if login := want[destinations.FieldLogin]; login != "" {
		shown = " (login " + destinations.Mask(login) + ")"
	}
	c := trueCondition(ConditionDestinationCredentialsSynced, fmt.Sprintf("credentials from Secret %s%s are in Vault at %s",
		secretName, shown, r.Vault.Path(path)))
	return &c, nil
}
