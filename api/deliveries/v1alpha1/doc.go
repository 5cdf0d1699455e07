// Package v1alpha1 holds the deliveries.integrations.ss3.dev/v1alpha1 API:
// the delivery log of webhook subscriptions and connectors, served from
// Postgres by the delivery API server (an aggregated API, not CRDs), and
// two create-only actions on it: a test event and a re-trigger. Kubernetes
// RBAC decides who sees and does what, as for any resource.
//
// They are served by the delivery API, not as CRDs, so no CRD is
// generated for them (kubebuilder:skip).
//
// The types have no internal version of their own: the server registers
// these as both, so no conversion code exists.
//
// +k8s:deepcopy-gen=package
// +k8s:openapi-gen=true
// +kubebuilder:skip
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupName is the API group the delivery API server serves.
const GroupName = "deliveries.integrations.ss3.dev"

// SchemeGroupVersion is the group and version of every kind in this package.
var SchemeGroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1alpha1"}

// AddKnownTypes registers this package's kinds under gv: the server adds
// them as its external and its internal version.
func AddKnownTypes(scheme *runtime.Scheme, gv schema.GroupVersion) {
	scheme.AddKnownTypes(gv,
		&WebhookDelivery{}, &WebhookDeliveryList{},
		&ConnectorDelivery{}, &ConnectorDeliveryList{},
		&WebhookTest{}, &WebhookRetrigger{},
	)
	if gv.Version != runtime.APIVersionInternal {
		metav1.AddToGroupVersion(scheme, gv)
	}
}

// AddToScheme registers the v1alpha1 kinds, for clients (the kubectl plugin).
func AddToScheme(scheme *runtime.Scheme) error {
	AddKnownTypes(scheme, SchemeGroupVersion)
	return nil
}
