package deliveryapi

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/endpoints/request"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
)

// ownerKind is a kind whose objects own deliveries: WebhookSubscription or
// ConnectorConfig. Its object's UID is the owner id in Postgres.
type ownerKind struct {
	kind, resource string
}

var (
	subscriptions = ownerKind{kind: "WebhookSubscription", resource: "webhooksubscriptions"}
	connectors    = ownerKind{kind: "ConnectorConfig", resource: "connectorconfigs"}
)

// owner is one object whose deliveries a request may see.
type owner struct {
	namespace, name string
	id              uuid.UUID
}

// directory finds owners, in a cache of their metadata, and decides which
// a user may see: those the user may get.
type directory struct {
	objects client.Reader
	authz   authorizer.Authorizer
}

// visible returns the owners of kind in namespace ("": all) that the
// request's user may see; name, when set, narrows to that one, which must
// exist and be allowed.
func (d *directory) visible(ctx context.Context, k ownerKind, namespace, name string) ([]owner, error) {
	if name != "" {
		o, err := d.lookup(ctx, k, namespace, name)
		if err != nil {
			return nil, err
		}
		if err := d.mayGet(ctx, k, o); err != nil {
			return nil, err
		}
		return []owner{o}, nil
	}
	all, err := d.list(ctx, k, namespace)
	if err != nil {
		return nil, err
	}
	// One decision for the namespace spares one per object when the user
	// may list them all.
	if ok, err := d.allowed(ctx, "list", k, namespace, ""); err != nil || ok {
		return all, err
	}
	var seen []owner
	for _, o := range all {
		ok, err := d.allowed(ctx, "get", k, o.namespace, o.name)
		if err != nil {
			return nil, err
		}
		if ok {
			seen = append(seen, o)
		}
	}
	return seen, nil
}

// ownerOf finds the owner with id in namespace and checks the user may
// get it. A delivery whose owner is elsewhere (or gone) is not found.
func (d *directory) ownerOf(ctx context.Context, k ownerKind, namespace string, id uuid.UUID, gr schema.GroupResource, deliveryName string) (owner, error) {
	all, err := d.list(ctx, k, namespace)
	if err != nil {
		return owner{}, err
	}
	for _, o := range all {
		if o.id == id {
			return o, d.mayGet(ctx, k, o)
		}
	}
	return owner{}, apierrors.NewNotFound(gr, deliveryName)
}

func (d *directory) lookup(ctx context.Context, k ownerKind, namespace, name string) (owner, error) {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(integrationsv1.GroupVersion.WithKind(k.kind))
	if err := d.objects.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return owner{}, apierrors.NewNotFound(integrationsv1.GroupVersion.WithResource(k.resource).GroupResource(), name)
		}
		return owner{}, apierrors.NewInternalError(fmt.Errorf("read %s %s/%s: %w", k.kind, namespace, name, err))
	}
	id, err := uuid.Parse(string(obj.UID))
	if err != nil {
		return owner{}, apierrors.NewInternalError(fmt.Errorf("uid of %s %s/%s is not a UUID", k.kind, namespace, name))
	}
	return owner{namespace: namespace, name: name, id: id}, nil
}

func (d *directory) list(ctx context.Context, k ownerKind, namespace string) ([]owner, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(integrationsv1.GroupVersion.WithKind(k.kind + "List"))
	if err := d.objects.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("list %s: %w", k.resource, err))
	}
	owners := make([]owner, 0, len(list.Items))
	for _, item := range list.Items {
		if id, err := uuid.Parse(string(item.UID)); err == nil {
			owners = append(owners, owner{namespace: item.Namespace, name: item.Name, id: id})
		}
	}
	return owners, nil
}

func (d *directory) mayGet(ctx context.Context, k ownerKind, o owner) error {
	ok, err := d.allowed(ctx, "get", k, o.namespace, o.name)
	if err != nil {
		return err
	}
	if !ok {
		return apierrors.NewForbidden(integrationsv1.GroupVersion.WithResource(k.resource).GroupResource(), o.name,
			fmt.Errorf("its deliveries are shown only to who may get it"))
	}
	return nil
}

// allowed asks the cluster's authorizer (a SubjectAccessReview, cached)
// whether the request's user may verb the owner kind.
func (d *directory) allowed(ctx context.Context, verb string, k ownerKind, namespace, name string) (bool, error) {
	u, ok := request.UserFrom(ctx)
	if !ok {
		return false, apierrors.NewUnauthorized("no user")
	}
	decision, _, err := d.authz.Authorize(ctx, authorizer.AttributesRecord{
		User: u, Verb: verb, Namespace: namespace, Name: name, ResourceRequest: true,
		APIGroup: integrationsv1.GroupVersion.Group, APIVersion: integrationsv1.GroupVersion.Version, Resource: k.resource,
	})
	if err != nil && decision != authorizer.DecisionAllow {
		return false, apierrors.NewInternalError(fmt.Errorf("authorize %s %s: %w", verb, k.resource, err))
	}
	return decision == authorizer.DecisionAllow, nil
}
