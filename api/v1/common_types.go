package v1

// StoreID identifies the store an integration belongs to.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][A-Za-z0-9._-]*$')",message="storeId may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit"
type StoreID string

// StoreIDsAnnotation, on a Namespace, binds it to the stores (comma-separated
// storeIds) its WebhookSubscriptions, ApiCredentials and ConnectorConfigs may
// act for; the store-tenancy ValidatingAdmissionPolicy (config/admission)
// refuses any other storeId. See docs/tenancy.md.
const StoreIDsAnnotation = "integrations.ss3.dev/store-ids"

// EventType names a platform domain event as `resource.action` (for example
// `order.placed`), or every action of a resource as `resource.*`.
// +kubebuilder:validation:MinLength=3
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z][a-z0-9_]*[.]([a-z][a-z0-9_]*([.][a-z][a-z0-9_]*)*|[*])$')",message="event type must be an exact type like 'order.placed' or a resource wildcard like 'order.*' (lowercase, dot-separated)"
type EventType string

// Condition types and reasons shared by every kind.
const (
	// ConditionReady is True when everything the resource declares exists
	// outside the cluster and matches the spec.
	ConditionReady = "Ready"
	// ConditionStalled (kstatus) is True, with Ready False, while the
	// resource cannot become Ready without a change to its spec or to what
	// it references (a missing Secret, rejected settings); it is absent
	// otherwise. Flux and Argo CD report such a resource as failed at once.
	ConditionStalled = "Stalled"
)

// SecretKeyReference points at one key of a Secret in the resource's own namespace.
type SecretKeyReference struct {
	// name of the Secret, in the same namespace as the resource.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=secret
	// +optional
	Key string `json:"key,omitempty"`
}

// isActive reads an optional active flag, whose default is true.
func isActive(active *bool) bool {
	return active == nil || *active
}
