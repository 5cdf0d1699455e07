package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WebhookSubscriptionSpec declares where a store's events are delivered:
// an HTTP endpoint (targetURL) or a queue (destination).
// +kubebuilder:validation:XValidation:rule="has(self.targetURL) != has(self.destination)",message="set exactly one of targetURL (an HTTP endpoint) or destination (an SQS queue or a STOMP broker)"
// +kubebuilder:validation:XValidation:rule="!has(self.targetURL) || self.targetURL.startsWith('https://') || (has(self.allowInsecureHTTP) && self.allowInsecureHTTP && self.targetURL.startsWith('http://'))",message="targetURL must use https:// (plain http:// is accepted only with allowInsecureHTTP: true)"
// +kubebuilder:validation:XValidation:rule="!has(self.destination) || !has(self.destination.sqs) || self.destination.sqs.queueURL.startsWith('https://') || (has(self.allowInsecureHTTP) && self.allowInsecureHTTP && self.destination.sqs.queueURL.startsWith('http://'))",message="destination.sqs.queueURL must use https:// (plain http:// is accepted only with allowInsecureHTTP: true)"
type WebhookSubscriptionSpec struct {
	// storeId is the store whose events this subscription receives. It
	// cannot change after creation, and must be one the namespace is bound to
	// (annotation integrations.ss3.dev/store-ids, see docs/tenancy.md).
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storeId cannot be changed; create a new WebhookSubscription for another store"
	// +required
	StoreID StoreID `json:"storeId"`

	// displayName is the name shown to store admins.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +required
	DisplayName string `json:"displayName"`

	// targetURL is the endpoint that receives an HTTP POST per event. It must be
	// https unless allowInsecureHTTP is set, and must not carry credentials
	// (user:password@): the receiver authenticates deliveries by their signature.
	// Exactly one of targetURL and destination is set.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != ''",message="targetURL must be an absolute URL with a host, like https://example.com/hooks"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@')",message="targetURL must not contain credentials (user:password@ or user@): anyone who can read the subscription would see them. Remove them and have the receiver authenticate deliveries by verifying the signature header (X-SS3-Signature, or webhook-signature with signatureScheme: StandardWebhooks) with the signing secret"
	// +optional
	TargetURL string `json:"targetURL,omitempty"`

	// destination delivers to a queue instead of an HTTP endpoint: an SQS
	// queue or a STOMP broker's destination. Routing, retries,
	// dead-lettering, signatures and status are the same as for targetURL.
	// +optional
	Destination *Destination `json:"destination,omitempty"`

	// allowInsecureHTTP permits a plain http:// targetURL (or SQS queueURL), for
	// receivers inside a trusted network. Deliveries are still signed.
	// +optional
	AllowInsecureHTTP bool `json:"allowInsecureHTTP,omitempty"`

	// events lists the event types delivered: exact types (`order.placed`) or
	// resource wildcards (`order.*`).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +required
	Events []EventType `json:"events"`

	// active turns delivery on or off without deleting the subscription.
	// +kubebuilder:default=true
	// +optional
	Active *bool `json:"active,omitempty"`

	// deliveryTimeout is how long one delivery attempt waits for a response
	// before it counts as failed. Between 1s and 120s.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('120s')",message="deliveryTimeout must be between 1s and 120s"
	// +optional
	DeliveryTimeout *metav1.Duration `json:"deliveryTimeout,omitempty"`

	// signingSecretRef imports the signing secret from a Secret in this
	// namespace (at least 16 characters). Without it the operator generates
	// one. Changing the referenced value rotates the secret.
	// +optional
	SigningSecretRef *SecretKeyReference `json:"signingSecretRef,omitempty"`

	// signatureScheme chooses how deliveries are signed: SS3 sends
	// X-SS3-Signature (hex HMAC-SHA256 of the body); StandardWebhooks also
	// sends webhook-id, webhook-timestamp and webhook-signature, which give
	// receivers replay protection.
	// +kubebuilder:validation:Enum=SS3;StandardWebhooks
	// +kubebuilder:default=SS3
	// +optional
	SignatureScheme string `json:"signatureScheme,omitempty"`

	// maxConcurrentDeliveries bounds the attempts in flight to targetURL at
	// once (per dispatcher replica); more wait their turn.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=256
	// +kubebuilder:default=10
	// +optional
	MaxConcurrentDeliveries int32 `json:"maxConcurrentDeliveries,omitempty"`

	// rateLimit bounds the request rate to targetURL (per dispatcher
	// replica); deliveries over it wait, they are not dropped.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// rotationGracePeriod is how long the previous signing secret stays valid
	// after a rotation, so receivers can roll over; deliveries carry
	// signatures for both meanwhile. Between 0s and 720h.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('720h')",message="rotationGracePeriod must be between 0s and 720h"
	// +optional
	RotationGracePeriod *metav1.Duration `json:"rotationGracePeriod,omitempty"`
}

// RetriggerDeadLettersAnnotation re-queues a WebhookSubscription's
// dead-lettered deliveries (keeping their delivery ids), or a
// ConnectorConfig's dead-lettered marketplace events, when set to a value
// not handled before; with RetriggerSinceAnnotation (RFC 3339) only those
// dead-lettered since then.
const (
	RetriggerDeadLettersAnnotation = "integrations.ss3.dev/retrigger-dead-letters"
	RetriggerSinceAnnotation       = "integrations.ss3.dev/retrigger-since"
)

// RotateSigningSecretAnnotation requests a new generated signing secret when
// set to a value not handled before (for example a timestamp).
const RotateSigningSecretAnnotation = "integrations.ss3.dev/rotate-signing-secret"

// WebhookSubscriptionStatus reports what the operator made of the spec.
type WebhookSubscriptionStatus struct {
	// conditions describe the subscription's state; Ready summarises them.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// subscriptionId is the id under which the subscription is stored and
	// delivered (the object's UID).
	// +optional
	SubscriptionID string `json:"subscriptionId,omitempty"`

	// targetURL is spec.targetURL with any user info removed, for display:
	// the URL column reads it, so credentials stored before they were
	// refused are not shown by kubectl get.
	// +optional
	TargetURL string `json:"targetURL,omitempty"`

	// signingSecretName is the Secret (owned by this subscription) that holds
	// the signing secret to give to the receiver.
	// +optional
	SigningSecretName string `json:"signingSecretName,omitempty"`

	// vaultPath is where the dispatcher reads the signing secret.
	// +optional
	VaultPath string `json:"vaultPath,omitempty"`

	// vaultVersion is the KV v2 version of the signing secret in Vault.
	// +optional
	VaultVersion int `json:"vaultVersion,omitempty"`

	// previousSecretExpiresAt is when the secret replaced by the last
	// rotation stops being used; empty when there is none.
	// +optional
	PreviousSecretExpiresAt *metav1.Time `json:"previousSecretExpiresAt,omitempty"`

	// lastRotationRequest is the rotate-signing-secret annotation value
	// last acted on.
	// +optional
	LastRotationRequest string `json:"lastRotationRequest,omitempty"`

	// delivery reports how deliveries to targetURL are going, updated at
	// most every few seconds whatever the traffic.
	// +optional
	Delivery *DeliveryStatus `json:"delivery,omitempty"`

	// lastRetrigger is the retrigger-dead-letters annotation value last acted on.
	// +optional
	LastRetrigger string `json:"lastRetrigger,omitempty"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	// requestsPerSecond is the sustained rate.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +required
	RequestsPerSecond int32 `json:"requestsPerSecond"`
	// burst is how many requests may go at once; defaults to requestsPerSecond.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	Burst int32 `json:"burst,omitempty"`
}

// DeliveryStatus is a subscription's delivery health.
type DeliveryStatus struct {
	// delivered counts deliveries the endpoint accepted.
	Delivered int64 `json:"delivered"`
	// failed counts failed attempts (each retry counts).
	Failed int64 `json:"failed"`
	// deadLettered counts deliveries dead-lettered now (given up after the
	// last retry): a re-trigger that re-queues them lowers it, as does
	// retention removing them. The Dead column shows it.
	DeadLettered int64 `json:"deadLettered"`
	// deadLetteredTotal counts every delivery ever dead-lettered, re-triggered
	// or not; it only grows.
	// +optional
	DeadLetteredTotal int64 `json:"deadLetteredTotal,omitempty"`
	// pending counts deliveries still to be made or retried.
	Pending int64 `json:"pending"`
	// consecutiveFailures counts failed attempts since the last success.
	ConsecutiveFailures int `json:"consecutiveFailures"`
	// lastAttemptTime is when the endpoint was last tried.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`
	// lastHTTPStatus is the endpoint's last answer (0: none).
	// +optional
	LastHTTPStatus int `json:"lastHTTPStatus,omitempty"`
	// lastError says why the last attempt failed; empty after a success.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// lastDeadLetterReason says why the last dead-lettered delivery was given up.
	// +optional
	LastDeadLetterReason string `json:"lastDeadLetterReason,omitempty"`
	// circuitState is the circuit breaker's state for the endpoint, as every
	// dispatcher replica honours it: closed (delivering), open (paused after
	// repeated failures; deliveries wait) or half-open (its open time is up;
	// one probe at a time, from any replica, until one succeeds).
	// +optional
	CircuitState string `json:"circuitState,omitempty"`
}

// WebhookSubscription delivers a store's platform events to an HTTPS endpoint,
// signed, with retries and dead-lettering.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=whsub;whs,categories=ss3;integrations
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.spec.storeId`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.targetURL`
// +kubebuilder:printcolumn:name="Events",type=string,JSONPath=`.spec.events`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Healthy",type=string,JSONPath=`.status.conditions[?(@.type=="Healthy")].status`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.delivery.delivered`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.delivery.failed`,priority=1
// +kubebuilder:printcolumn:name="Dead",type=integer,JSONPath=`.status.delivery.deadLettered`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.delivery.pending`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WebhookSubscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the subscription.
	// +required
	Spec WebhookSubscriptionSpec `json:"spec"`

	// status reports its state.
	// +optional
	Status WebhookSubscriptionStatus `json:"status,omitempty"`
}

// IsActive reports whether deliveries are on (the default).
func (s *WebhookSubscriptionSpec) IsActive() bool { return isActive(s.Active) }

// WebhookSubscriptionList is a list of WebhookSubscription.
// +kubebuilder:object:root=true
type WebhookSubscriptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookSubscription `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WebhookSubscription{}, &WebhookSubscriptionList{})
}
