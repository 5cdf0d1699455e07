package deliveryapi

import (
	"context"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
	"github.com/ss3dev/integration-operator/internal/store"
)

// deliveryKind is what differs between webhook and connector deliveries.
type deliveryKind struct {
	resource, singular     string
	owners                 ownerKind
	ownerField, ownerLabel string
	newObject              func() runtime.Object
	newList                func() runtime.Object
	list                   func(context.Context, store.DeliveryFilter) ([]store.LoggedDelivery, error)
	changedSince           func(ctx context.Context, owners []uuid.UUID, since time.Time, limit int) ([]store.LoggedDelivery, error)
	summary                func(d store.LoggedDelivery, o owner) runtime.Object
	whole                  func(ctx context.Context, id uuid.UUID, namespace string) (runtime.Object, error)
	setItems               func(list runtime.Object, items []runtime.Object)
	columns                []metav1.TableColumnDefinition
	cells                  func(obj runtime.Object) []any
}

// deliveries serves one delivery kind: get, list and watch, as a table for
// kubectl. It implements the generic server's rest interfaces.
type deliveries struct {
	kind  deliveryKind
	log   *store.Store
	dir   *directory
	watch watchSettings
}

var (
	_ rest.Getter               = (*deliveries)(nil)
	_ rest.Lister               = (*deliveries)(nil)
	_ rest.Watcher              = (*deliveries)(nil)
	_ rest.Scoper               = (*deliveries)(nil)
	_ rest.SingularNameProvider = (*deliveries)(nil)
)

func (r *deliveries) New() runtime.Object     { return r.kind.newObject() }
func (r *deliveries) NewList() runtime.Object { return r.kind.newList() }
func (r *deliveries) Destroy()                {}
func (r *deliveries) NamespaceScoped() bool   { return true }
func (r *deliveries) GetSingularName() string { return r.kind.singular }
func (r *deliveries) groupResource() schema.GroupResource {
	return deliveriesv1alpha1.SchemeGroupVersion.WithResource(r.kind.resource).GroupResource()
}

// Get answers one delivery whole: attempts, request as sent, payload.
func (r *deliveries) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	id, err := uuid.Parse(name)
	if err != nil {
		return nil, apierrors.NewNotFound(r.groupResource(), name)
	}
	return r.kind.whole(ctx, id, request.NamespaceValue(ctx))
}

// parse reads a list or watch request at the database's clock, which
// relative times and resource versions are measured by.
func (r *deliveries) parse(ctx context.Context, opts *metainternalversion.ListOptions) (query, time.Time, error) {
	now, err := r.log.Now(ctx)
	if err != nil {
		return query{}, now, apierrors.NewInternalError(err)
	}
	q, err := parseQuery(opts, r.kind.ownerField, r.kind.ownerLabel, now)
	return q, now, err
}

// List answers a page of deliveries, newest first.
func (r *deliveries) List(ctx context.Context, opts *metainternalversion.ListOptions) (runtime.Object, error) {
	q, now, err := r.parse(ctx, opts)
	if err != nil {
		return nil, err
	}
	list := r.kind.newList()
	meta, _ := list.(metav1.ListInterface)
	meta.SetResourceVersion(resourceVersion(now))
	if q.name != "" {
		obj, err := r.Get(ctx, q.name, nil)
		if apierrors.IsNotFound(err) {
			return list, nil
		}
		if err != nil {
			return nil, err
		}
		r.kind.setItems(list, []runtime.Object{obj})
		return list, nil
	}
	owners, err := r.dir.visible(ctx, r.kind.owners, request.NamespaceValue(ctx), q.owner)
	if err != nil {
		return nil, err
	}
	byID := ownersByID(owners)
	rows, err := r.kind.list(ctx, q.filter(owners))
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	items := make([]runtime.Object, 0, len(rows))
	for _, d := range rows {
		items = append(items, r.kind.summary(d, byID[d.OwnerID]))
	}
	r.kind.setItems(list, items)
	if len(rows) == q.limit {
		meta.SetContinue(encodeContinue(rows[len(rows)-1]))
	}
	return list, nil
}

func ownersByID(owners []owner) map[uuid.UUID]owner {
	m := make(map[uuid.UUID]owner, len(owners))
	for _, o := range owners {
		m[o.id] = o
	}
	return m
}

// ConvertToTable gives kubectl its columns.
func (r *deliveries) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: r.kind.columns}
	add := func(o runtime.Object) {
		table.Rows = append(table.Rows, metav1.TableRow{Cells: r.kind.cells(o), Object: runtime.RawExtension{Object: o}})
	}
	if meta.IsListType(obj) {
		items, err := meta.ExtractList(obj)
		if err != nil {
			return nil, err
		}
		for _, o := range items {
			add(o)
		}
		if l, ok := obj.(metav1.ListInterface); ok {
			table.ResourceVersion, table.Continue = l.GetResourceVersion(), l.GetContinue()
		}
	} else {
		add(obj)
	}
	return table, nil
}

// Watch polls the attempts recorded since the resource version it is
// given (a list's) and sends each delivery that changed.
func (r *deliveries) Watch(ctx context.Context, opts *metainternalversion.ListOptions) (watch.Interface, error) {
	q, now, err := r.parse(ctx, opts)
	if err != nil {
		return nil, err
	}
	namespace := request.NamespaceValue(ctx)
	// Checked now, so that a user who may see nothing is refused at once.
	if _, err := r.dir.visible(ctx, r.kind.owners, namespace, q.owner); err != nil {
		return nil, err
	}
	from := now
	if opts != nil {
		if t, ok := parseResourceVersion(opts.ResourceVersion); ok && t.Before(now) {
			from = t
		}
	}
	return startPoll(ctx, r, q, namespace, from), nil
}

// age formats a time as kubectl's AGE column does.
func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}
