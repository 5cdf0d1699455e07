package v1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectorType names the adapter that serves a connector: a marketplace
// (amazon, ebay, google-shopping) or a payment provider whose webhooks we
// receive (stripe, payfast). To add one, add it to the Enum marker and the
// constants below, and register its adapter.
// +kubebuilder:validation:Enum=amazon;ebay;google-shopping;stripe;payfast
type ConnectorType string

// The connector types with an adapter.
const (
	ConnectorAmazon         ConnectorType = "amazon"
	ConnectorEbay           ConnectorType = "ebay"
	ConnectorGoogleShopping ConnectorType = "google-shopping"
	ConnectorStripe         ConnectorType = "stripe"
	ConnectorPayFast        ConnectorType = "payfast"
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

	// refreshTokenKey is the Secret key holding the seller's OAuth refresh
	// token (amazon, ebay).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:default=refresh-token
	// +optional
	RefreshTokenKey string `json:"refreshTokenKey,omitempty"`
}

// ConnectorConfigSpec declares a store's connection to a marketplace.
type ConnectorConfigSpec struct {
	// storeId is the store the connector syncs. It cannot change after creation,
	// and must be one the namespace is bound to (annotation
	// integrations.ss3.dev/store-ids, see docs/tenancy.md).
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

	// webhookPath is where the dispatcher's inbound address receives this
	// connector's provider webhooks (stripe, payfast).
	// +optional
	WebhookPath string `json:"webhookPath,omitempty"`

	// lastSync is the newest sync run: events pushed to the marketplace
	// (OUTBOUND) or a poll (INBOUND).
	// +optional
	LastSync *SyncStatus `json:"lastSync,omitempty"`

	// outbound counts platform events handed to the marketplace.
	// +optional
	Outbound *ConnectorOutboundStatus `json:"outbound,omitempty"`

	// inbound counts provider webhooks received.
	// +optional
	Inbound *ConnectorInboundStatus `json:"inbound,omitempty"`

	// lastRetrigger is the retrigger-dead-letters annotation value last acted on.
	// +optional
	LastRetrigger string `json:"lastRetrigger,omitempty"`
}

// SyncStatus describes one connector_sync_log run.
type SyncStatus struct {
	// direction is OUTBOUND (to the marketplace) or INBOUND (polled from it).
	Direction string `json:"direction"`
	// entityType is what was synced: product, inventory, order.
	EntityType string `json:"entityType"`
	// recordCount is how many records the run synced.
	RecordCount int `json:"recordCount"`
	// status is RUNNING, SUCCEEDED, PARTIAL or FAILED.
	Status string `json:"status"`
	// errorSummary says what failed, when something did.
	// +optional
	ErrorSummary string `json:"errorSummary,omitempty"`
	// time is when the run finished (or started, while running).
	Time metav1.Time `json:"time"`
}

// ConnectorOutboundStatus counts events handed to the marketplace.
type ConnectorOutboundStatus struct {
	// pending events wait for their first or next attempt.
	Pending int64 `json:"pending"`
	// delivered events were accepted by the marketplace.
	Delivered int64 `json:"delivered"`
	// failed counts failed attempts that will be retried.
	Failed int64 `json:"failed"`
	// deadLettered counts events dead-lettered now (given up on): a
	// re-trigger that re-queues them lowers it, as does retention removing
	// them.
	DeadLettered int64 `json:"deadLettered"`
	// deadLetteredTotal counts every event ever given up on; it only grows.
	// +optional
	DeadLetteredTotal int64 `json:"deadLetteredTotal,omitempty"`
}

// ConnectorInboundStatus counts provider webhooks.
type ConnectorInboundStatus struct {
	// accepted webhooks were verified, stored and published.
	Accepted int64 `json:"accepted"`
	// duplicates were replays of an event already stored.
	Duplicates int64 `json:"duplicates"`
	// rejected webhooks failed verification (signature, merchant, source).
	Rejected int64 `json:"rejected"`
	// lastRejectedTime is when the newest rejection happened.
	// +optional
	LastRejectedTime *metav1.Time `json:"lastRejectedTime,omitempty"`
	// lastRejectReason says why.
	// +optional
	LastRejectReason string `json:"lastRejectReason,omitempty"`
}

// ConnectorConfig connects a store to a marketplace (Amazon, eBay, Google
// Shopping), where events flow out to it and polled data flows back in, or
// to a payment provider (Stripe, PayFast) whose webhooks flow in.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=conncfg;connector,categories=ss3;integrations
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.spec.storeId`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.connectorType`
// +kubebuilder:printcolumn:name="Active",type=boolean,JSONPath=`.spec.active`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Last Sync",type=string,JSONPath=`.status.lastSync.status`
// +kubebuilder:printcolumn:name="Synced",type=date,JSONPath=`.status.lastSync.time`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.outbound.pending`,priority=1
// +kubebuilder:printcolumn:name="Dead",type=integer,JSONPath=`.status.outbound.deadLettered`,priority=1
// +kubebuilder:printcolumn:name="Rejected",type=integer,JSONPath=`.status.inbound.rejected`,priority=1
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
