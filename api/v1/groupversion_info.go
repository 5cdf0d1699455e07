// Package v1 holds the integrations.ss3.dev/v1 API types: WebhookSubscription,
// ApiCredential and ConnectorConfig. It contains types and their validation
// markers only; behaviour lives in the controllers and the dispatcher.
//
// +kubebuilder:object:generate=true
// +groupName=integrations.ss3.dev
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "integrations.ss3.dev", Version: "v1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
