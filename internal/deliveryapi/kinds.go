package deliveryapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
)

// deliveryColumns are kubectl get's columns for both kinds; the owner's
// column is named for it.
func deliveryColumns(ownerColumn string) []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: "The delivery id."},
		{Name: ownerColumn, Type: "string"},
		{Name: "Event Type", Type: "string"},
		{Name: "Phase", Type: "string"},
		{Name: "Attempts", Type: "integer"},
		{Name: "HTTP", Type: "string", Description: "The last answer's status code."},
		{Name: "Reason", Type: "string", Priority: 1},
		{Name: "Age", Type: "string", Description: "Since the event."},
	}
}

func httpCell(s *int32) string {
	if s == nil {
		return ""
	}
	return fmt.Sprint(*s)
}

func webhookKind(log *store.Store, dir *directory) deliveryKind {
	k := deliveryKind{
		resource: "webhookdeliveries", singular: "webhookdelivery", owners: subscriptions,
		ownerField: fieldSubscription, ownerLabel: labelSubscription,
		newObject:    func() runtime.Object { return &deliveriesv1alpha1.WebhookDelivery{} },
		newList:      func() runtime.Object { return &deliveriesv1alpha1.WebhookDeliveryList{} },
		list:         log.ListWebhookDeliveries,
		changedSince: log.WebhookDeliveriesChangedSince,
		summary:      func(d store.LoggedDelivery, o owner) runtime.Object { return webhookSummary(d, o) },
		setItems: func(list runtime.Object, items []runtime.Object) {
			l := list.(*deliveriesv1alpha1.WebhookDeliveryList)
			l.Items = make([]deliveriesv1alpha1.WebhookDelivery, len(items))
			for i, o := range items {
				l.Items[i] = *o.(*deliveriesv1alpha1.WebhookDelivery)
			}
		},
		columns: deliveryColumns("Subscription"),
		cells: func(obj runtime.Object) []any {
			d := obj.(*deliveriesv1alpha1.WebhookDelivery)
			return []any{d.Name, d.Spec.Subscription, d.Spec.EventType, d.Status.Phase, d.Status.Attempts, httpCell(d.Status.HTTPStatus), d.Status.Reason, age(d.Spec.EventTime)}
		},
	}
	k.whole = func(ctx context.Context, id uuid.UUID, namespace string) (runtime.Object, error) {
		gr := deliveriesv1alpha1.SchemeGroupVersion.WithResource(k.resource).GroupResource()
		d, payload, found, err := log.WebhookDelivery(ctx, id)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if !found {
			return nil, apierrors.NewNotFound(gr, id.String())
		}
		o, err := dir.ownerOf(ctx, subscriptions, namespace, d.OwnerID, gr, id.String())
		if err != nil {
			return nil, err
		}
		attempts, err := log.DeliveryAttempts(ctx, id, d.EventTime)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		sub, _, err := log.GetSubscription(ctx, d.OwnerID)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		obj := webhookSummary(d, o)
		obj.Status.AttemptHistory = attemptHistory(attempts)
		at := d.CreatedAt
		if n := len(attempts); n > 0 {
			at = attempts[n-1].StartedAt
		}
		h := http.Header{}
		signing.SetWebhookHeaders(h, id.String(), d.EventType, payload, sub.SignatureScheme == store.SignatureStandardWebhooks, at)
		req := &deliveriesv1alpha1.DeliveryRequest{Headers: map[string]string{}}
		for name, values := range h {
			if spelled, ok := contractSpelling[name]; ok {
				name = spelled
			}
			req.Headers[name] = strings.Join(values, ",")
		}
		req.Body, req.BodyBase64 = body(payload)
		obj.Spec.Request = req
		return obj, nil
	}
	return k
}

func connectorKind(log *store.Store, dir *directory) deliveryKind {
	k := deliveryKind{
		resource: "connectordeliveries", singular: "connectordelivery", owners: connectors,
		ownerField: fieldConnector, ownerLabel: labelConnector,
		newObject:    func() runtime.Object { return &deliveriesv1alpha1.ConnectorDelivery{} },
		newList:      func() runtime.Object { return &deliveriesv1alpha1.ConnectorDeliveryList{} },
		list:         log.ListConnectorDeliveries,
		changedSince: log.ConnectorDeliveriesChangedSince,
		summary:      func(d store.LoggedDelivery, o owner) runtime.Object { return connectorSummary(d, o) },
		setItems: func(list runtime.Object, items []runtime.Object) {
			l := list.(*deliveriesv1alpha1.ConnectorDeliveryList)
			l.Items = make([]deliveriesv1alpha1.ConnectorDelivery, len(items))
			for i, o := range items {
				l.Items[i] = *o.(*deliveriesv1alpha1.ConnectorDelivery)
			}
		},
		columns: deliveryColumns("Connector"),
		cells: func(obj runtime.Object) []any {
			d := obj.(*deliveriesv1alpha1.ConnectorDelivery)
			return []any{d.Name, d.Spec.Connector, d.Spec.EventType, d.Status.Phase, d.Status.Attempts, httpCell(d.Status.HTTPStatus), d.Status.Reason, age(d.Spec.EventTime)}
		},
	}
	k.whole = func(ctx context.Context, id uuid.UUID, namespace string) (runtime.Object, error) {
		gr := deliveriesv1alpha1.SchemeGroupVersion.WithResource(k.resource).GroupResource()
		d, payload, found, err := log.ConnectorDelivery(ctx, id)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		if !found {
			return nil, apierrors.NewNotFound(gr, id.String())
		}
		o, err := dir.ownerOf(ctx, connectors, namespace, d.OwnerID, gr, id.String())
		if err != nil {
			return nil, err
		}
		attempts, err := log.ConnectorDeliveryAttempts(ctx, id, d.EventTime)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		obj := connectorSummary(d, o)
		obj.Status.AttemptHistory = attemptHistory(attempts)
		text, b64 := body(payload)
		obj.Spec.Payload = text
		if b64 != "" {
			obj.Spec.Payload = "base64:" + b64
		}
		return obj, nil
	}
	return k
}

// contractSpelling names headers as the contract spells them, not as Go
// canonicalises them (X-Ss3-Event): header names are case-insensitive, and
// a store admin compares them with the contract.
var contractSpelling = func() map[string]string {
	m := map[string]string{}
	for _, name := range []string{"Content-Type", "User-Agent", signing.HeaderEvent, signing.HeaderDelivery, signing.HeaderSignature,
		signing.HeaderWebhookID, signing.HeaderWebhookTimestamp, signing.HeaderWebhookSignature} {
		m[http.CanonicalHeaderKey(name)] = name
	}
	return m
}()

// body shows a payload as text when it is, else as base64.
func body(payload []byte) (text, b64 string) {
	if utf8.Valid(payload) {
		return string(payload), ""
	}
	return "", base64.StdEncoding.EncodeToString(payload)
}

func objectMeta(d store.LoggedDelivery, o owner, ownerLabel string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: d.ID.String(), Namespace: o.namespace, UID: "", ResourceVersion: resourceVersion(d.UpdatedAt),
		CreationTimestamp: metav1.NewTime(d.CreatedAt),
		Labels:            map[string]string{ownerLabel: o.name, labelEventType: labelValue(d.EventType), labelPhase: phaseOf(d)},
	}
}

// labelValue keeps an event type a valid label value (63 characters of
// [A-Za-z0-9._-]); types that are not stay selectable by field.
func labelValue(s string) string {
	if len(s) > 63 {
		return ""
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return ""
		}
	}
	return s
}

func deliveryStatus(d store.LoggedDelivery) deliveriesv1alpha1.DeliveryStatus {
	st := deliveriesv1alpha1.DeliveryStatus{Phase: phaseOf(d), Attempts: int32(d.Attempts), LastUpdateTime: metav1.NewTime(d.UpdatedAt)}
	if d.HTTPStatus != nil {
		v := int32(*d.HTTPStatus)
		st.HTTPStatus = &v
	}
	if d.NextRetryAt != nil && st.Phase != deliveriesv1alpha1.PhaseDelivered && st.Phase != deliveriesv1alpha1.PhaseDeadLettered {
		t := metav1.NewTime(*d.NextRetryAt)
		st.NextRetryTime = &t
	}
	if d.DeliveredAt != nil {
		t := metav1.NewTime(*d.DeliveredAt)
		st.DeliveredTime = &t
	}
	if d.LastError != nil {
		st.Reason = *d.LastError
	} else if st.HTTPStatus != nil && st.Phase != deliveriesv1alpha1.PhaseDelivered {
		st.Reason = fmt.Sprintf("HTTP %d", *st.HTTPStatus)
	}
	return st
}

func webhookSummary(d store.LoggedDelivery, o owner) *deliveriesv1alpha1.WebhookDelivery {
	return &deliveriesv1alpha1.WebhookDelivery{
		TypeMeta:   metav1.TypeMeta{APIVersion: deliveriesv1alpha1.SchemeGroupVersion.String(), Kind: "WebhookDelivery"},
		ObjectMeta: objectMeta(d, o, labelSubscription),
		Spec: deliveriesv1alpha1.WebhookDeliverySpec{Subscription: o.name, EventID: d.EventID.String(), EventType: d.EventType,
			EventTime: metav1.NewTime(d.EventTime), StoreID: d.StoreID},
		Status: deliveryStatus(d),
	}
}

func connectorSummary(d store.LoggedDelivery, o owner) *deliveriesv1alpha1.ConnectorDelivery {
	spec := deliveriesv1alpha1.ConnectorDeliverySpec{Connector: o.name, EventID: d.EventID.String(), EventType: d.EventType,
		EventTime: metav1.NewTime(d.EventTime), StoreID: d.StoreID}
	if d.EntityKey != nil {
		spec.EntityKey = *d.EntityKey
	}
	return &deliveriesv1alpha1.ConnectorDelivery{
		TypeMeta:   metav1.TypeMeta{APIVersion: deliveriesv1alpha1.SchemeGroupVersion.String(), Kind: "ConnectorDelivery"},
		ObjectMeta: objectMeta(d, o, labelConnector),
		Spec:       spec,
		Status:     deliveryStatus(d),
	}
}

func attemptHistory(attempts []store.DeliveryAttempt) []deliveriesv1alpha1.DeliveryAttempt {
	out := make([]deliveriesv1alpha1.DeliveryAttempt, 0, len(attempts))
	for _, a := range attempts {
		h := deliveriesv1alpha1.DeliveryAttempt{Number: int32(a.Number), StartTime: metav1.NewTime(a.StartedAt),
			DurationMillis: a.Duration.Milliseconds(), Error: a.Error, Replica: a.Replica}
		if a.HTTPStatus != nil {
			v := int32(*a.HTTPStatus)
			h.HTTPStatus = &v
		}
		if a.ResponseExcerpt != nil {
			h.ResponseExcerpt = *a.ResponseExcerpt
		}
		out = append(out, h)
	}
	return out
}

// statusOf makes an error a watch can send.
func statusOf(err error) *metav1.Status {
	if s, ok := err.(apierrors.APIStatus); ok {
		st := s.Status()
		return &st
	}
	st := apierrors.NewInternalError(err).Status()
	return &st
}
