package v1

// Destination is a queue a subscription delivers to instead of an HTTP
// endpoint; exactly one kind is set.
// +kubebuilder:validation:XValidation:rule="has(self.sqs) != has(self.stomp)",message="destination takes exactly one of sqs or stomp"
type Destination struct {
	// sqs delivers each event as a message to an Amazon SQS queue.
	// +optional
	SQS *SQSDestination `json:"sqs,omitempty"`

	// stomp delivers each event as a SEND frame to a STOMP broker (ActiveMQ,
	// RabbitMQ), acknowledged by a receipt.
	// +optional
	STOMP *STOMPDestination `json:"stomp,omitempty"`
}

// SQSDestination is an SQS queue. Messages carry the event's payload as
// their body and the event id, type, delivery id and signature as message
// attributes; several ready at once go in one SendMessageBatch.
type SQSDestination struct {
	// region of the queue, like eu-west-1.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')",message="region must be an AWS region like eu-west-1"
	// +required
	Region string `json:"region"`

	// queueURL is the queue's URL, like
	// https://sqs.eu-west-1.amazonaws.com/123456789012/orders (a FIFO queue's
	// name ends in .fifo). Its scheme and host are the endpoint called.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getHostname() != ''",message="queueURL must be an absolute URL with a host, like https://sqs.eu-west-1.amazonaws.com/123456789012/orders"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@')",message="queueURL must not contain credentials: put them in the Secret named by credentialsSecretRef"
	// +required
	QueueURL string `json:"queueURL"`

	// credentialsSecretRef names the Secret, in this namespace, holding the
	// IAM access key allowed to send to the queue. The manager copies it to
	// Vault; it never appears in the status.
	// +required
	CredentialsSecretRef SQSCredentialsReference `json:"credentialsSecretRef"`

	// messageGroupID is the MessageGroupId of a FIFO queue's messages:
	// fixed text, in which {storeId} and {eventType} are replaced. Events of
	// one group arrive in order. Defaults to {storeId} on a FIFO queue;
	// ignored otherwise. A FIFO message's MessageDeduplicationId is the
	// delivery id.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	MessageGroupID string `json:"messageGroupID,omitempty"`
}

// SQSCredentialsReference names a Secret and the keys of an IAM access key in it.
type SQSCredentialsReference struct {
	// name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// accessKeyIDKey is the key holding the access key id.
	// +kubebuilder:default=access-key-id
	// +optional
	AccessKeyIDKey string `json:"accessKeyIDKey,omitempty"`
	// secretAccessKeyKey is the key holding the secret access key.
	// +kubebuilder:default=secret-access-key
	// +optional
	SecretAccessKeyKey string `json:"secretAccessKeyKey,omitempty"`
}

// STOMPDestination is a destination on a STOMP 1.2 broker. Each event is
// one SEND with a receipt: it counts as delivered once the broker has
// acknowledged it. Headers carry the event id, type, delivery id and
// signature.
type STOMPDestination struct {
	// address of the broker, host:port.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9.-]+:[0-9]{1,5}$') || self.matches('^\\\\[[0-9A-Fa-f:.]+\\\\]:[0-9]{1,5}$')",message="address must be host:port, like broker.example:61613"
	// +required
	Address string `json:"address"`

	// tls connects with TLS, the broker's certificate verified against the
	// system's CAs and those of the dispatcher's --destination-ca-file.
	// +optional
	TLS bool `json:"tls,omitempty"`

	// loginSecretRef names the Secret, in this namespace, holding the
	// broker login and passcode; without it the broker is connected to
	// without a login. The manager copies them to Vault.
	// +optional
	LoginSecretRef *STOMPLoginReference `json:"loginSecretRef,omitempty"`

	// destination is the broker's destination name, like /queue/orders.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.matches('[\\\\r\\\\n:]')",message="destination must not contain a colon, CR or LF"
	// +required
	Destination string `json:"destination"`

	// headers are added to every SEND frame (not sensitive: they are shown
	// by kubectl). They cannot replace the headers the dispatcher sets.
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['destination', 'content-type', 'content-length', 'receipt', 'transaction', 'x-ss3-event', 'x-ss3-event-id', 'x-ss3-delivery', 'x-ss3-signature']))",message="headers cannot set destination, content-type, content-length, receipt, transaction or the X-SS3-* headers the dispatcher sets"
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z0-9_.-]{1,128}$'))",message="header names may contain only letters, digits, '_', '.' and '-'"
	// +optional
	Headers map[string]string `json:"headers,omitempty"`
}

// STOMPLoginReference names a Secret and the keys of a broker login in it.
type STOMPLoginReference struct {
	// name of the Secret, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// loginKey is the key holding the login.
	// +kubebuilder:default=login
	// +optional
	LoginKey string `json:"loginKey,omitempty"`
	// passcodeKey is the key holding the passcode.
	// +kubebuilder:default=passcode
	// +optional
	PasscodeKey string `json:"passcodeKey,omitempty"`
}

// Destination kinds, as stored with the subscription's row.
const (
	DestinationWebhook = "webhook"
	DestinationSQS     = "sqs"
	DestinationSTOMP   = "stomp"
)

// Kind says which kind of destination the spec names.
func (s *WebhookSubscriptionSpec) Kind() string {
	switch {
	case s.Destination != nil && s.Destination.SQS != nil:
		return DestinationSQS
	case s.Destination != nil && s.Destination.STOMP != nil:
		return DestinationSTOMP
	}
	return DestinationWebhook
}
