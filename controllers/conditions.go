package controllers

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
)

// Condition reasons a user can act on.
const (
	ReasonSynced              = "Synced"
	ReasonVaultUnavailable    = "VaultUnavailable"
	ReasonVaultError          = "VaultError"
	ReasonDatabaseUnavailable = "DatabaseUnavailable"
	ReasonSecretRefNotFound   = "SecretRefNotFound"
	ReasonSecretRefKeyMissing = "SecretRefKeyMissing"
	ReasonSecretRefInvalid    = "SecretRefInvalid"
	ReasonSecretNameConflict  = "SecretNameConflict"
	ReasonKubernetesError     = "KubernetesError"
	ReasonDeleting            = "Deleting"
	ReasonNotReady            = "NotReady"
)

// stalledReasons are failures no retry heals: until the spec, or a Secret
// or endpoint it names, changes, the resource will not become Ready.
var stalledReasons = map[string]bool{
	ReasonSecretRefNotFound:              true,
	ReasonSecretRefKeyMissing:            true,
	ReasonSecretRefInvalid:               true,
	ReasonSecretNameConflict:             true,
	ReasonCredentialsInTargetURL:         true,
	ReasonEndpointGone:                   true,
	ReasonDestinationCredentialsRejected: true,
	ReasonSettingsRejected:               true,
	ReasonUnknownConnectorType:           true,
	ReasonCredentialsNotFound:            true,
	ReasonCredentialsKeyMissing:          true,
	ReasonExpired:                        true,
}

// setStalled keeps the kstatus Stalled condition: True, with the reason and
// message of the first of Ready and the given types that is False for a
// stalled reason, when there is one (Ready is then held False with it);
// removed otherwise. Call it after Ready is summarised.
func setStalled(conditions *[]metav1.Condition, generation int64, types ...string) {
	for _, t := range append([]string{integrationsv1.ConditionReady}, types...) {
		c := meta.FindStatusCondition(*conditions, t)
		if c == nil || c.Status != metav1.ConditionFalse || !stalledReasons[c.Reason] {
			continue
		}
		stalled := *c
		if t != integrationsv1.ConditionReady {
			setCondition(conditions, generation, falseCondition(integrationsv1.ConditionReady, stalled.Reason, stalled.Message))
		}
		setCondition(conditions, generation, metav1.Condition{Type: integrationsv1.ConditionStalled, Status: metav1.ConditionTrue,
			Reason: stalled.Reason, Message: stalled.Message})
		return
	}
	meta.RemoveStatusCondition(conditions, integrationsv1.ConditionStalled)
}

// setCondition records c at generation; lastTransitionTime moves only when
// the status flips (meta.SetStatusCondition keeps it otherwise).
func setCondition(conditions *[]metav1.Condition, generation int64, c metav1.Condition) {
	c.ObservedGeneration = generation
	meta.SetStatusCondition(conditions, c)
}

func trueCondition(condType, message string) metav1.Condition {
	return metav1.Condition{Type: condType, Status: metav1.ConditionTrue, Reason: ReasonSynced, Message: message}
}

func falseCondition(condType, reason, message string) metav1.Condition {
	return metav1.Condition{Type: condType, Status: metav1.ConditionFalse, Reason: reason, Message: message}
}

// setReady summarises the given condition types into Ready, kept first in
// the list: True when all are True, else False with the first failure's
// reason and message.
func setReady(conditions *[]metav1.Condition, generation int64, types ...string) {
	ready := metav1.Condition{Type: integrationsv1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonSynced,
		Message: "everything the spec declares is in place"}
	for _, t := range types {
		c := meta.FindStatusCondition(*conditions, t)
		if c == nil {
			ready = falseCondition(integrationsv1.ConditionReady, ReasonNotReady, t+" not yet reported")
			break
		}
		if c.Status != metav1.ConditionTrue {
			ready = falseCondition(integrationsv1.ConditionReady, c.Reason, c.Message)
			break
		}
	}
	setCondition(conditions, generation, ready)
	// Ready first, so `kubectl describe` leads with the answer.
	for i, c := range *conditions {
		if c.Type == integrationsv1.ConditionReady && i != 0 {
			r := (*conditions)[i]
			copy((*conditions)[1:i+1], (*conditions)[0:i])
			(*conditions)[0] = r
		}
	}
}
