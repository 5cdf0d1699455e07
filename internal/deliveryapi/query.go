package deliveryapi

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	"k8s.io/apimachinery/pkg/selection"

	deliveriesv1alpha1 "github.com/ss3dev/integration-operator/api/deliveries/v1alpha1"
	"github.com/ss3dev/integration-operator/internal/store"
)

// Labels every delivery carries, which a label selector may also use.
const (
	labelSubscription = "integrations.ss3.dev/subscription"
	labelConnector    = "integrations.ss3.dev/connector"
	labelEventType    = "integrations.ss3.dev/event-type"
	labelPhase        = "integrations.ss3.dev/phase"
)

// Page sizes: kubectl asks for 500 at a time; a client that asks for none
// still gets pages.
const (
	defaultPage = 500
	maxPage     = 1000
)

// query is a list or watch request, parsed.
type query struct {
	owner     string // the owner's name, or every visible one
	name      string // metadata.name: one delivery
	phase     string // a deliveriesv1alpha1 phase
	eventType string
	since     *time.Time
	until     *time.Time
	after     *store.DeliveryCursor
	limit     int
}

// parseQuery reads the field and label selectors, limit and continue
// token. ownerField is spec.subscription or spec.connector, and
// ownerLabel its label.
func parseQuery(opts *metainternalversion.ListOptions, ownerField, ownerLabel string, now time.Time) (query, error) {
	q := query{limit: defaultPage}
	if opts == nil {
		return q, nil
	}
	if opts.Limit > 0 {
		q.limit = int(min(opts.Limit, maxPage))
	}
	set := func(key, value string) error {
		switch key {
		case ownerField, ownerLabel:
			q.owner = value
		case "metadata.name":
			q.name = value
		case fieldEventType, labelEventType:
			q.eventType = value
		case fieldPhase, labelPhase:
			if _, ok := phaseStatus[value]; !ok {
				return fmt.Errorf("%s must be one of Pending, Retrying, Delivered, DeadLettered", key)
			}
			q.phase = value
		case fieldSince, fieldUntil:
			t, err := ParseTime(value, now)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			if key == fieldSince {
				q.since = &t
			} else {
				q.until = &t
			}
		case "metadata.namespace":
		default:
			return fmt.Errorf("cannot select on %q", key)
		}
		return nil
	}
	if opts.FieldSelector != nil {
		for _, r := range opts.FieldSelector.Requirements() {
			if r.Operator != selection.Equals && r.Operator != selection.DoubleEquals {
				return q, apierrors.NewBadRequest(fmt.Sprintf("field selector %s: only = is supported", r.Field))
			}
			if err := set(r.Field, r.Value); err != nil {
				return q, apierrors.NewBadRequest("field selector: " + err.Error())
			}
		}
	}
	if opts.LabelSelector != nil {
		reqs, _ := opts.LabelSelector.Requirements()
		for _, r := range reqs {
			values := r.Values().List()
			if (r.Operator() != selection.Equals && r.Operator() != selection.DoubleEquals && r.Operator() != selection.In) || len(values) != 1 ||
				(r.Key() != ownerLabel && r.Key() != labelEventType && r.Key() != labelPhase) {
				return q, apierrors.NewBadRequest(fmt.Sprintf("label selector: only %s, %s and %s with one value each are supported", ownerLabel, labelEventType, labelPhase))
			}
			if err := set(r.Key(), values[0]); err != nil {
				return q, apierrors.NewBadRequest("label selector: " + err.Error())
			}
		}
	}
	if opts.Continue != "" {
		c, err := decodeContinue(opts.Continue)
		if err != nil {
			return q, apierrors.NewBadRequest("continue: not a token this server gave")
		}
		q.after = &c
	}
	return q, nil
}

// ParseTime reads a time as the since and until selectors (and the
// plugin's --dead-since) take it: RFC 3339, or a duration back from now.
func ParseTime(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration back from now (2h)", v)
}

// phaseStatus maps phases to the status column; Pending and Retrying are
// both PENDING or FAILED rows, told apart by their attempts.
var phaseStatus = map[string]string{
	deliveriesv1alpha1.PhasePending:      store.DeliveryPending,
	deliveriesv1alpha1.PhaseRetrying:     store.DeliveryFailed,
	deliveriesv1alpha1.PhaseDelivered:    store.DeliveryDelivered,
	deliveriesv1alpha1.PhaseDeadLettered: store.DeliveryDeadLettered,
}

// phaseOf names a row's phase.
func phaseOf(d store.LoggedDelivery) string {
	switch d.Status {
	case store.DeliveryDelivered:
		return deliveriesv1alpha1.PhaseDelivered
	case store.DeliveryDeadLettered:
		return deliveriesv1alpha1.PhaseDeadLettered
	}
	if d.Attempts > 0 {
		return deliveriesv1alpha1.PhaseRetrying
	}
	return deliveriesv1alpha1.PhasePending
}

// matches says whether a row (from a watch's poll) passes the query.
func (q query) matches(d store.LoggedDelivery, ownerName string) bool {
	switch {
	case q.owner != "" && q.owner != ownerName,
		q.name != "" && q.name != d.ID.String(),
		q.eventType != "" && q.eventType != d.EventType,
		q.phase != "" && q.phase != phaseOf(d),
		q.since != nil && d.EventTime.Before(*q.since),
		q.until != nil && !d.EventTime.Before(*q.until):
		return false
	}
	return true
}

// filter is the store's filter for the query over owners.
func (q query) filter(owners []owner) store.DeliveryFilter {
	f := store.DeliveryFilter{EventType: q.eventType, Since: q.since, Until: q.until, After: q.after, Limit: q.limit}
	for _, o := range owners {
		f.Owners = append(f.Owners, o.id)
	}
	if q.phase != "" {
		f.Status = phaseStatus[q.phase]
	}
	return f
}

// A continue token is the last row's place in the order: its event time
// and id. Opaque to clients, and stable: paging needs no server state.
func encodeContinue(d store.LoggedDelivery) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(d.EventTime.UnixMicro(), 10) + "/" + d.ID.String()))
}

func decodeContinue(token string) (store.DeliveryCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return store.DeliveryCursor{}, err
	}
	at, id, ok := strings.Cut(string(raw), "/")
	if !ok {
		return store.DeliveryCursor{}, fmt.Errorf("malformed")
	}
	micros, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return store.DeliveryCursor{}, err
	}
	uid, err := uuid.Parse(id)
	if err != nil {
		return store.DeliveryCursor{}, err
	}
	return store.DeliveryCursor{EventTime: time.UnixMicro(micros).UTC(), ID: uid}, nil
}

// Resource versions are the database's clock in microseconds: a list's is
// when it was read, which a watch starts from; a delivery's is when it
// last changed.
func resourceVersion(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func parseResourceVersion(rv string) (time.Time, bool) {
	micros, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || micros <= 0 {
		return time.Time{}, false
	}
	return time.UnixMicro(micros), true
}
