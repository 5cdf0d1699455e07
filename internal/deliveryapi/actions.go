package deliveryapi

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Bounds on how long a test waits for its first attempt.
const (
	defaultTestWait = 15 * time.Second
	maxTestWait     = 60 * time.Second
)

// action is a create-only resource, like a SubjectAccessReview: the create
// does something and answers with the result; nothing else is stored.
type action struct {
	singular  string
	newObject func() runtime.Object
	create    func(ctx context.Context, obj runtime.Object, dryRun bool) (runtime.Object, error)
}

var (
	_ rest.Creater              = (*action)(nil)
	_ rest.Scoper               = (*action)(nil)
	_ rest.SingularNameProvider = (*action)(nil)
)

func (a *action) New() runtime.Object     { return a.newObject() }
func (a *action) Destroy()                {}
func (a *action) NamespaceScoped() bool   { return true }
func (a *action) GetSingularName() string { return a.singular }

func (a *action) Create(ctx context.Context, obj runtime.Object, validate rest.ValidateObjectFunc, opts *metav1.CreateOptions) (runtime.Object, error) {
	if validate != nil {
		if err := validate(ctx, obj); err != nil {
			return nil, err
		}
	}
	dryRun := opts != nil && len(opts.DryRun) > 0
	return a.create(ctx, obj, dryRun)
}

// stamp gives an action's answer the metadata a created object has.
func stamp(m *metav1.ObjectMeta, ctx context.Context, name string) {
	m.Namespace = request.NamespaceValue(ctx)
	if m.Name == "" {
		m.Name = name
	}
	m.CreationTimestamp = metav1.Now()
}

func webhookTests(log *store.Store, dir *directory, every time.Duration) *action {
	return &action{
		singular:  "webhooktest",
		newObject: func() runtime.Object { return &deliveriesv1alpha1.WebhookTest{} },
		create: func(ctx context.Context, obj runtime.Object, dryRun bool) (runtime.Object, error) {
			t := obj.(*deliveriesv1alpha1.WebhookTest)
			if t.Spec.Subscription == "" {
				return nil, apierrors.NewBadRequest("spec.subscription is required")
			}
			eventType := t.Spec.EventType
			if eventType == "" {
				eventType = store.TestEventType
			}
			wait := time.Duration(t.Spec.WaitSeconds) * time.Second
			if wait <= 0 {
				wait = defaultTestWait
			}
			wait = min(wait, maxTestWait)
			namespace := request.NamespaceValue(ctx)
			owners, err := dir.visible(ctx, subscriptions, namespace, t.Spec.Subscription)
			if err != nil {
				return nil, err
			}
			sub, found, err := log.GetSubscription(ctx, owners[0].id)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			if !found || !sub.IsActive {
				return nil, apierrors.NewConflict(deliveriesv1alpha1.SchemeGroupVersion.WithResource("webhooktests").GroupResource(), t.Name,
					fmt.Errorf("subscription %s is not active (not yet reconciled, or paused)", t.Spec.Subscription))
			}
			payload, err := testPayload(t, namespace, eventType)
			if err != nil {
				return nil, err
			}
			if dryRun {
				stamp(&t.ObjectMeta, ctx, "dry-run")
				return t, nil
			}
			id, _, err := log.InsertTestDelivery(ctx, sub.ID, sub.StoreID, eventType, payload)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			stamp(&t.ObjectMeta, ctx, id.String())
			t.Status.Delivery = id.String()
			d, err := awaitFirstAttempt(ctx, log, id, wait, every)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			st := deliveryStatus(d)
			t.Status.Phase, t.Status.HTTPStatus, t.Status.Reason = st.Phase, st.HTTPStatus, st.Reason
			return t, nil
		},
	}
}

// testPayload is the chosen payload, which must be JSON, or a ping that
// says what it is.
func testPayload(t *deliveriesv1alpha1.WebhookTest, namespace, eventType string) ([]byte, error) {
	if t.Spec.Payload != nil && len(t.Spec.Payload.Raw) > 0 {
		if !json.Valid(t.Spec.Payload.Raw) {
			return nil, apierrors.NewBadRequest("spec.payload must be JSON")
		}
		return t.Spec.Payload.Raw, nil
	}
	return json.Marshal(map[string]any{
		"test": true, "eventType": eventType, "subscription": namespace + "/" + t.Spec.Subscription,
		"message": "A test delivery from integration-operator: verify its signature as for any delivery.",
	})
}

// awaitFirstAttempt polls the delivery until an attempt is recorded, the
// wait is over or the request ends; it answers the delivery as it stands.
func awaitFirstAttempt(ctx context.Context, log *store.Store, id uuid.UUID, wait, every time.Duration) (store.LoggedDelivery, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last store.LoggedDelivery
	for {
		// The last read is made outside the wait, so its answer is current.
		d, _, _, err := log.WebhookDelivery(context.WithoutCancel(ctx), id)
		if err != nil {
			return last, err
		}
		last = d
		if d.Attempts > 0 || d.Status == store.DeliveryDelivered || d.Status == store.DeliveryDeadLettered {
			return d, nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return last, nil
		}
	}
}

func webhookRetriggers(log *store.Store, dir *directory) *action {
	return &action{
		singular:  "webhookretrigger",
		newObject: func() runtime.Object { return &deliveriesv1alpha1.WebhookRetrigger{} },
		create: func(ctx context.Context, obj runtime.Object, dryRun bool) (runtime.Object, error) {
			r := obj.(*deliveriesv1alpha1.WebhookRetrigger)
			if r.Spec.Subscription == "" {
				return nil, apierrors.NewBadRequest("spec.subscription is required")
			}
			if r.Spec.Delivery != "" && r.Spec.DeadLetteredSince != nil {
				return nil, apierrors.NewBadRequest("spec.delivery and spec.deadLetteredSince are exclusive")
			}
			owners, err := dir.visible(ctx, subscriptions, request.NamespaceValue(ctx), r.Spec.Subscription)
			if err != nil {
				return nil, err
			}
			sub := owners[0]
			stamp(&r.ObjectMeta, ctx, "retrigger-"+uuid.NewString()[:8])
			if r.Spec.Delivery != "" {
				id, err := uuid.Parse(r.Spec.Delivery)
				if err != nil {
					return nil, apierrors.NewBadRequest("spec.delivery must be a delivery's name (its id)")
				}
				d, _, found, err := log.WebhookDelivery(ctx, id)
				if err != nil {
					return nil, apierrors.NewInternalError(err)
				}
				gr := deliveriesv1alpha1.SchemeGroupVersion.WithResource("webhookdeliveries").GroupResource()
				if !found || d.OwnerID != sub.id {
					return nil, apierrors.NewNotFound(gr, r.Spec.Delivery)
				}
				if d.Status != store.DeliveryDeadLettered {
					return nil, apierrors.NewConflict(gr, r.Spec.Delivery, fmt.Errorf("it is %s, not dead-lettered: only dead letters are re-triggered", phaseOf(d)))
				}
				if dryRun {
					r.Status.Requeued = 1
					return r, nil
				}
				ok, err := log.RequeueDelivery(ctx, id)
				if err != nil {
					return nil, apierrors.NewInternalError(err)
				}
				if ok {
					r.Status.Requeued = 1
				}
				return r, nil
			}
			if dryRun {
				return r, nil
			}
			var since *time.Time
			if r.Spec.DeadLetteredSince != nil {
				since = &r.Spec.DeadLetteredSince.Time
			}
			n, err := log.RequeueDeadLettered(ctx, sub.id, since)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			r.Status.Requeued = n
			return r, nil
		},
	}
}
