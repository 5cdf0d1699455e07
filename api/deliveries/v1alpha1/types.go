package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Phases of a delivery, as status.phase (and the field selector on it)
// names them.
const (
	// PhasePending: not attempted yet.
	PhasePending = "Pending"
	// PhaseRetrying: attempted and failed; another attempt is scheduled.
	PhaseRetrying     = "Retrying"
	PhaseDelivered    = "Delivered"
	PhaseDeadLettered = "DeadLettered"
)

// WebhookDelivery is one event delivered (or being delivered) to one
// WebhookSubscription's endpoint. Its name is the delivery id, the
// X-SS3-Delivery header the partner received.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type WebhookDelivery struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WebhookDeliverySpec `json:"spec"`
	Status DeliveryStatus      `json:"status"`
}

// WebhookDeliverySpec is what was to be delivered, and to whom.
type WebhookDeliverySpec struct {
	// Subscription is the WebhookSubscription's name, in this namespace.
	Subscription string      `json:"subscription"`
	EventID      string      `json:"eventID"`
	EventType    string      `json:"eventType"`
	EventTime    metav1.Time `json:"eventTime"`
	StoreID      string      `json:"storeID"`
	// Request is the request as sent, signatures redacted. Only a get of
	// one delivery carries it; lists leave it out.
	Request *DeliveryRequest `json:"request,omitempty"`
}

// DeliveryRequest is a delivery's request as the partner received it.
type DeliveryRequest struct {
	// Headers as sent; signature values are redacted.
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the payload, byte for byte, when it is UTF-8 text;
	// BodyBase64 holds it otherwise.
	Body       string `json:"body,omitempty"`
	BodyBase64 string `json:"bodyBase64,omitempty"`
}

// DeliveryStatus is where a delivery stands and how it got there.
type DeliveryStatus struct {
	Phase string `json:"phase"`
	// Attempts made so far (since its last re-trigger).
	Attempts int32 `json:"attempts"`
	// HTTPStatus is the last answer's status code (webhooks).
	HTTPStatus *int32 `json:"httpStatus,omitempty"`
	// Reason says why it ended as it did, or why its last attempt failed.
	Reason        string       `json:"reason,omitempty"`
	NextRetryTime *metav1.Time `json:"nextRetryTime,omitempty"`
	DeliveredTime *metav1.Time `json:"deliveredTime,omitempty"`
	// LastUpdateTime is when the delivery last changed.
	LastUpdateTime metav1.Time `json:"lastUpdateTime"`
	// AttemptHistory is every attempt, oldest first. Only a get of one
	// delivery carries it; lists leave it out.
	// +listType=atomic
	AttemptHistory []DeliveryAttempt `json:"attemptHistory,omitempty"`
}

// DeliveryAttempt is one attempt at a delivery.
type DeliveryAttempt struct {
	Number         int32       `json:"number"`
	StartTime      metav1.Time `json:"startTime"`
	DurationMillis int64       `json:"durationMillis"`
	HTTPStatus     *int32      `json:"httpStatus,omitempty"`
	// ResponseExcerpt is the first KiB of the answer.
	ResponseExcerpt string `json:"responseExcerpt,omitempty"`
	Error           string `json:"error,omitempty"`
	// Replica is the dispatcher pod that made the attempt.
	Replica string `json:"replica,omitempty"`
}

// WebhookDeliveryList is a page of webhook deliveries, newest first.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type WebhookDeliveryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookDelivery `json:"items"`
}

// ConnectorDelivery is one event delivered (or being delivered) to a
// marketplace through one ConnectorConfig. Its name is the delivery id.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type ConnectorDelivery struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ConnectorDeliverySpec `json:"spec"`
	Status DeliveryStatus        `json:"status"`
}

// ConnectorDeliverySpec is what was to be delivered, and through which
// connector.
type ConnectorDeliverySpec struct {
	// Connector is the ConnectorConfig's name, in this namespace.
	Connector string      `json:"connector"`
	EventID   string      `json:"eventID"`
	EventType string      `json:"eventType"`
	EventTime metav1.Time `json:"eventTime"`
	StoreID   string      `json:"storeID"`
	// EntityKey is the marketplace entity the event updates, when it has one.
	EntityKey string `json:"entityKey,omitempty"`
	// Payload is the event's payload (get of one delivery only).
	Payload string `json:"payload,omitempty"`
}

// ConnectorDeliveryList is a page of connector deliveries, newest first.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type ConnectorDeliveryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConnectorDelivery `json:"items"`
}

// WebhookTest sends a test event to a subscription's endpoint, signed like
// any delivery, and answers with its first attempt's result. Create-only,
// like a SubjectAccessReview: nothing is stored but the delivery itself.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type WebhookTest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WebhookTestSpec   `json:"spec"`
	Status WebhookTestStatus `json:"status,omitempty"`
}

// WebhookTestSpec is the test event to send.
type WebhookTestSpec struct {
	// Subscription is the WebhookSubscription's name, in this namespace.
	Subscription string `json:"subscription"`
	// EventType defaults to webhook.test.
	EventType string `json:"eventType,omitempty"`
	// Payload is the JSON body to send; a small ping by default.
	Payload *runtime.RawExtension `json:"payload,omitempty"`
	// WaitSeconds bounds how long the create waits for the first attempt
	// (default 15, at most 60; 0 takes the default).
	WaitSeconds int32 `json:"waitSeconds,omitempty"`
}

// WebhookTestStatus is the test delivery and how its first attempt went.
type WebhookTestStatus struct {
	// Delivery is the WebhookDelivery's name (its delivery id).
	Delivery string `json:"delivery,omitempty"`
	// Phase is the delivery's phase when the create answered: Pending if
	// no attempt was made within the wait.
	Phase      string `json:"phase,omitempty"`
	HTTPStatus *int32 `json:"httpStatus,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// WebhookRetrigger re-queues dead-lettered deliveries of a subscription:
// one by name, or those dead-lettered since a time, or all. Create-only.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type WebhookRetrigger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   WebhookRetriggerSpec   `json:"spec"`
	Status WebhookRetriggerStatus `json:"status,omitempty"`
}

// WebhookRetriggerSpec says which dead letters to re-queue.
type WebhookRetriggerSpec struct {
	// Subscription is the WebhookSubscription's name, in this namespace.
	Subscription string `json:"subscription"`
	// Delivery, when set, is the one delivery to re-queue.
	Delivery string `json:"delivery,omitempty"`
	// DeadLetteredSince, when set, re-queues those dead-lettered at or
	// after it; with neither set, every dead letter is re-queued.
	DeadLetteredSince *metav1.Time `json:"deadLetteredSince,omitempty"`
}

// WebhookRetriggerStatus says what was re-queued.
type WebhookRetriggerStatus struct {
	Requeued int64 `json:"requeued"`
}
