package v1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectorType names the adapter that serves a connector. To add one, add
// it to the Enum marker and the constants below, and register its adapter.
// +kubebuilder:validation:Enum=amazon;ebay;google-shopping
type ConnectorType string

// The connector types with an adapter.
const (
	ConnectorAmazon         ConnectorType = "amazon"
	ConnectorEbay           ConnectorType = "ebay"
	ConnectorGoogleShopping ConnectorType = "google-shopping"
)

// ConnectorCredentialsReference points at the Secret holding a connector's API
// key and secret; the operator copies them into Vault.
type ConnectorCredentialsReference struct {
	// name of the Secret, in the same namespace as the ConnectorConfig.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// apiKeyKey is the Secret key holding the API key (or client id).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:default=api-key
	// +optional
	APIKeyKey string `json:"apiKeyKey,omitempty"`

	// apiSecretKey is the Secret key holding the API secret (or client secret).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:default=api-secret
	// +optional
	APISecretKey string `json:"apiSecretKey,omitempty"`
}

// ConnectorConfigSpec declares a store's connection to a marketplace.
type ConnectorConfigSpec struct {
	// storeId is the store the connector syncs. It cannot change after creation.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storeId cannot be changed; create a new ConnectorConfig for another store"
	// +required
	StoreID StoreID `json:"storeId"`

	// connectorType selects the adapter. It cannot change after creation.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="connectorType cannot be changed; create a new ConnectorConfig"
	// +required
	ConnectorType ConnectorType `json:"connectorType"`

	// displayName is the name shown to store admins.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +required
	DisplayName string `json:"displayName"`

	// active turns sync on or off without deleting the connector.
	// +kubebuilder:default=true
	// +optional
	Active *bool `json:"active,omitempty"`

	// eventSubscriptions lists the platform events forwarded to the connector:
	// exact types (`product.updated`) or resource wildcards (`product.*`).
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	EventSubscriptions []EventType `json:"eventSubscriptions,omitempty"`

	// settings are the adapter's non-sensitive options (marketplace id,
	// region, base URL, ...). Credentials belong in credentialsSecretRef.
	// +optional
	Settings map[string]apiextensionsv1.JSON `json:"settings,omitempty"`

	// credentialsSecretRef names the Secret holding the connector's API key and secret.
	// +required
	CredentialsSecretRef ConnectorCredentialsReference `json:"credentialsSecretRef"`

	// pollInterval is how often the connector pulls from the marketplace.
	// Between 30s and 24h.
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s') && duration(self) <= duration('24h')",message="pollInterval must be between 30s and 24h"
	// +optional
	PollInterval *metav1.Duration `json:"pollInterval,omitempty"`
}

// ConnectorConfigStatus reports what the operator made of the spec.
type ConnectorConfigStatus struct {
	// conditions describe the connector's state; Ready summarises them.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// configId is the id under which the connector is stored (the object's UID).
	// +optional
	ConfigID string `json:"configId,omitempty"`
}

// ConnectorConfig connects a store to a marketplace (Amazon, eBay, Google
// Shopping): events flow out to it, polled data flows back in.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=conncfg;connector,categories=ss3;integrations
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.spec.storeId`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.connectorType`
// +kubebuilder:printcolumn:name="Active",type=boolean,JSONPath=`.spec.active`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ConnectorConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the connector.
	// +required
	Spec ConnectorConfigSpec `json:"spec"`

	// status reports its state.
	// +optional
	Status ConnectorConfigStatus `json:"status,omitempty"`
}

// IsActive reports whether the connector syncs (the default).
func (s *ConnectorConfigSpec) IsActive() bool { return isActive(s.Active) }

// ConnectorConfigList is a list of ConnectorConfig.
// +kubebuilder:object:root=true
type ConnectorConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConnectorConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ConnectorConfig{}, &ConnectorConfigList{})
}
