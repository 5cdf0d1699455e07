package deliveryapi

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
)

var (
	// Scheme holds the served kinds, under v1alpha1 and as the internal
	// version (the same Go types: nothing to convert).
	Scheme = runtime.NewScheme()
	// Codecs encodes and decodes them.
	Codecs = serializer.NewCodecFactory(Scheme)
)

// Field selector labels each list understands, besides metadata.name and
// metadata.namespace.
var (
	webhookFields   = []string{fieldSubscription, fieldEventType, fieldPhase, fieldSince, fieldUntil}
	connectorFields = []string{fieldConnector, fieldEventType, fieldPhase, fieldSince, fieldUntil}
)

const (
	fieldSubscription = "spec.subscription"
	fieldConnector    = "spec.connector"
	fieldEventType    = "spec.eventType"
	fieldPhase        = "status.phase"
	// since and until bound the event time: an RFC 3339 time, or a
	// duration back from now (since=2h).
	fieldSince = "since"
	fieldUntil = "until"
)

func init() {
	gv := deliveriesv1alpha1.SchemeGroupVersion
	deliveriesv1alpha1.AddKnownTypes(Scheme, gv)
	deliveriesv1alpha1.AddKnownTypes(Scheme, schema.GroupVersion{Group: gv.Group, Version: runtime.APIVersionInternal})
	utilruntime.Must(Scheme.SetVersionPriority(gv))
	metav1.AddToGroupVersion(Scheme, schema.GroupVersion{Version: "v1"})
	Scheme.AddUnversionedTypes(schema.GroupVersion{Group: "", Version: "v1"},
		&metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
	for kind, fields := range map[string][]string{"WebhookDelivery": webhookFields, "ConnectorDelivery": connectorFields} {
		utilruntime.Must(Scheme.AddFieldLabelConversionFunc(gv.WithKind(kind), acceptFields(fields)))
	}
}

// acceptFields passes the given field labels through unchanged, so the
// generic handlers let them reach List and Watch; others are refused with
// the list of what is supported.
func acceptFields(fields []string) runtime.FieldLabelConversionFunc {
	return func(label, value string) (string, string, error) {
		switch label {
		case "metadata.name", "metadata.namespace":
			return label, value, nil
		}
		for _, f := range fields {
			if label == f {
				return label, value, nil
			}
		}
		return "", "", fmt.Errorf("field label %q not supported; supported: metadata.name, metadata.namespace, %v", label, fields)
	}
}
