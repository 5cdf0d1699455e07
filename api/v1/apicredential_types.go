package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CredentialType is the kind of credential issued.
// +kubebuilder:validation:Enum=ApiKey;OAuthClient
type CredentialType string

const (
	// CredentialTypeAPIKey is a single secret presented as a bearer key.
	CredentialTypeAPIKey CredentialType = "ApiKey"
	// CredentialTypeOAuthClient is an OAuth 2.0 client (client credentials grant).
	CredentialTypeOAuthClient CredentialType = "OAuthClient"
)

// Scope grants one action on one resource, as `{resource}:{action}`.
// +kubebuilder:validation:Enum="catalog:read";"inventory:read";"inventory:write";"orders:read";"customers:read";"webhooks:manage"
type Scope string

// The scopes a credential can hold.
const (
	ScopeCatalogRead    Scope = "catalog:read"
	ScopeInventoryRead  Scope = "inventory:read"
	ScopeInventoryWrite Scope = "inventory:write"
	ScopeOrdersRead     Scope = "orders:read"
	ScopeCustomersRead  Scope = "customers:read"
	ScopeWebhooksManage Scope = "webhooks:manage"
)

// ApiCredentialSpec declares a credential the API gateway accepts for a store.
type ApiCredentialSpec struct {
	// storeId is the store the credential acts for. It cannot change after creation,
	// and must be one the namespace is bound to (annotation
	// integrations.ss3.dev/store-ids, see docs/tenancy.md).
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storeId cannot be changed; create a new ApiCredential for another store"
	// +required
	StoreID StoreID `json:"storeId"`

	// type is ApiKey (one secret, sent as a bearer key) or OAuthClient
	// (client id and secret, for the client credentials grant). It cannot change.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type cannot be changed; create a new ApiCredential"
	// +required
	Type CredentialType `json:"type"`

	// displayName describes the credential's holder, for people.
	// +kubebuilder:validation:MaxLength=200
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// scopes the credential grants, each `{resource}:{action}`.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=6
	// +listType=set
	// +required
	Scopes []Scope `json:"scopes"`

	// expiresAt is when the credential stops being accepted. Without it, it
	// does not expire.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// active turns the credential on or off without revoking it.
	// +kubebuilder:default=true
	// +optional
	Active *bool `json:"active,omitempty"`

	// secretName is the Secret, in this namespace, that receives the plain
	// secret once, at issuance. The operator never reads it back. It cannot change.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="secretName must be a valid Secret name: lowercase letters, digits, '-' and '.'"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="secretName cannot be changed; the plain secret was delivered once to the original Secret (rotate to issue a new one)"
	// +required
	SecretName string `json:"secretName"`

	// rotationGracePeriod is how long the previous secret stays valid after a
	// rotation, so holders can switch over. Between 0s and 720h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('720h')",message="rotationGracePeriod must be between 0s and 720h"
	// +optional
	RotationGracePeriod *metav1.Duration `json:"rotationGracePeriod,omitempty"`
}

// RotateCredentialAnnotation requests a new secret when set to a value not
// handled before (for example a timestamp); the new plain secret replaces
// the old one in the Secret named by secretName.
const RotateCredentialAnnotation = "integrations.ss3.dev/rotate-credential"

// ApiCredentialStatus reports the issued credential, never its secret.
type ApiCredentialStatus struct {
	// conditions describe the credential's state; Ready summarises them.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// credentialId is the credential's id in the credentials store.
	// +optional
	CredentialID string `json:"credentialId,omitempty"`

	// clientId is the public identifier presented with the secret; safe to show.
	// +optional
	ClientID string `json:"clientId,omitempty"`

	// issuedAt is when the current secret was issued.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// expiresAt mirrors spec.expiresAt as applied.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// lastUsedAt is when the gateway last accepted the credential (synced periodically).
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`

	// previousSecretExpiresAt is when the secret replaced by the last
	// rotation stops being accepted; empty when there is none.
	// +optional
	PreviousSecretExpiresAt *metav1.Time `json:"previousSecretExpiresAt,omitempty"`

	// lastRotationRequest is the rotate-credential annotation value last acted on.
	// +optional
	LastRotationRequest string `json:"lastRotationRequest,omitempty"`
}

// ApiCredential issues an API key or OAuth client for a store; the credentials
// API validates it on every inbound request.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=apicred;apicreds,categories=ss3;integrations
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.spec.storeId`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.status.clientId`
// +kubebuilder:printcolumn:name="Scopes",type=string,JSONPath=`.spec.scopes`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expiresAt`
// +kubebuilder:printcolumn:name="Last Used",type=date,JSONPath=`.status.lastUsedAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ApiCredential struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the credential.
	// +required
	Spec ApiCredentialSpec `json:"spec"`

	// status reports the issued credential.
	// +optional
	Status ApiCredentialStatus `json:"status,omitempty"`
}

// IsActive reports whether the credential is accepted (the default).
func (s *ApiCredentialSpec) IsActive() bool { return isActive(s.Active) }

// ApiCredentialList is a list of ApiCredential.
// +kubebuilder:object:root=true
type ApiCredentialList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApiCredential `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ApiCredential{}, &ApiCredentialList{})
}
