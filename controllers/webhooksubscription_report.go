package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/destinations"
	"github.com/ss3dev/integration-operator/internal/store"
)

// ConditionHealthy says whether deliveries to the endpoint are succeeding.
const ConditionHealthy = "Healthy"

// Healthy condition reasons.
const (
	ReasonDelivering        = "Delivering"
	ReasonNoDeliveriesYet   = "NoDeliveriesYet"
	ReasonDeliveriesFailing = "DeliveriesFailing"
	ReasonEndpointGone      = "EndpointGone"
	// ReasonEventIntakeStalled: the store's events are stuck in Kafka (a
	// batch holding them cannot be persisted); on subscriptions and connectors.
	ReasonEventIntakeStalled = "EventIntakeStalled"
)

// intakeStallFreshness: a stall not refreshed for this long is over (its
// replica died or moved on); a stalled replica refreshes it every few seconds.
const intakeStallFreshness = time.Minute

// StatusReporter copies what the dispatchers record in Postgres onto the
// resources' status: each subscription's delivery health and each
// connector's sync health, with Events for what a store admin must act on.
// It runs on the leader. Its writes share a budget (report_budget.go):
// health transitions go first and land within one interval, counters are
// refreshed oldest first, and the API server never sees more than
// WriteBudget writes/s however many objects there are.
type StatusReporter struct {
	Client   client.Client
	Store    *store.Store
	Recorder events.EventRecorder
	Interval time.Duration
	Log      logr.Logger
	// Resync, when set, wakes the subscription reconciler for a
	// subscription whose signing secret the dispatcher cannot find, so the
	// secret is put back now rather than at the next resync.
	Resync *Wake
	// WriteBudget caps status writes per second across all objects (0:
	// DefaultStatusWriteBudget); WriteBurst is how many may go at once (0:
	// one second's worth).
	WriteBudget float64
	WriteBurst  int
	// Workers is how many patches may be in flight (0: 4); PatchTimeout
	// bounds each (0: 5s, at most half the interval).
	Workers      int
	PatchTimeout time.Duration
	// Metrics, when set, counts writes done and deferred and times passes.
	Metrics *Metrics

	once   sync.Once
	budget *writeBudget
}

// Start reports every Interval until ctx ends. Passes start on a fixed
// beat (a pass is bounded by the interval), so a transition waits at most
// one interval to be read.
func (r *StatusReporter) Start(ctx context.Context) error {
	wait.NonSlidingUntilWithContext(ctx, func(ctx context.Context) {
		if err := r.pass(ctx, r.deliveryWrites, r.connectorWrites); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "reporting status failed; retrying next interval")
		}
	}, r.interval())
	return nil
}

// ReportDeliveries runs one pass over the subscriptions.
func (r *StatusReporter) ReportDeliveries(ctx context.Context) error {
	return r.pass(ctx, r.deliveryWrites)
}

func (r *StatusReporter) interval() time.Duration { return orDefault(r.Interval, 10*time.Second) }

// pass computes the writes of each collector and makes those the budget
// allows before the interval is up.
func (r *StatusReporter) pass(ctx context.Context, collectors ...func(context.Context) ([]statusWrite, error)) error {
	began := time.Now()
	r.once.Do(func() {
		timeout := min(orDefault(r.PatchTimeout, defaultPatchTimeout), r.interval()/2)
		r.budget = newWriteBudget(r.WriteBudget, r.WriteBurst, cmp.Or(r.Workers, defaultStatusWorkers), timeout)
	})
	passCtx, cancel := context.WithTimeout(ctx, r.interval())
	defer cancel()
	var writes []statusWrite
	var errs []error
	for _, collect := range collectors {
		w, err := collect(passCtx)
		writes, errs = append(writes, w...), append(errs, err)
	}
	res := r.budget.run(ctx, passCtx, writes, func(w statusWrite, err error) {
		// A conflict means the reconciler just wrote; a later pass catches up.
		r.Log.V(1).Info("status not written this pass", "kind", w.kind, "uid", w.uid, "error", err.Error())
	})
	r.Metrics.observeStatusPass(res, time.Since(began))
	return errors.Join(errs...)
}

// deliveryWrites computes each subscription's delivery status and the
// patches that bring it up to date.
func (r *StatusReporter) deliveryWrites(ctx context.Context) ([]statusWrite, error) {
	stats, err := r.Store.SubscriptionStatsAll(ctx)
	if err != nil {
		return nil, err
	}
	stalled, err := r.intakeStalls(ctx)
	if err != nil {
		return nil, err
	}
	var subs integrationsv1.WebhookSubscriptionList
	if err := r.Client.List(ctx, &subs); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	var writes []statusWrite
	listed := map[types.UID]bool{}
	for i := range subs.Items {
		sub := &subs.Items[i]
		listed[sub.UID] = true
		id, err := uuid.Parse(string(sub.UID))
		if err != nil || !sub.DeletionTimestamp.IsZero() {
			continue
		}
		st, ok := stats[id]
		stall := stalled(string(sub.Spec.StoreID))
		if !ok && sub.Status.Delivery == nil && stall == nil && !isStalled(sub.Status.Conditions) {
			continue
		}
		original := sub.DeepCopy()
		sub.Status.Delivery = deliveryStatus(st)
		healthy := healthyCondition(st, ok)
		if stall != nil {
			healthy = stalledCondition(ConditionHealthy, string(sub.Spec.StoreID), *stall)
		}
		setCondition(&sub.Status.Conditions, sub.Generation, healthy)
		missing := r.secretMissing(sub, st)
		if sub.Status.ObservedGeneration > 0 {
			// At the generation the reconciler last saw: the reporter does
			// not read the spec's Secrets, only holds Ready to what Healthy says.
			subscriptionReadiness(sub, sub.Status.ObservedGeneration)
		}
		if equality.Semantic.DeepEqual(original.Status, sub.Status) {
			continue
		}
		writes = append(writes, statusWrite{kind: "WebhookSubscription", uid: sub.UID,
			health: deliveryHealthMoved(&original.Status, &sub.Status),
			patch: func(ctx context.Context) error {
				return patchStatusIfChanged(ctx, r.Client, original, sub, original.Status, sub.Status)
			},
			after: func() { r.announceDelivery(sub, original, healthy, st, missing) }})
	}
	r.budget.forget("WebhookSubscription", listed)
	return writes, nil
}

// deliveryHealthMoved: what a user acts on changed, not only counters.
func deliveryHealthMoved(before, after *integrationsv1.WebhookSubscriptionStatus) bool {
	if conditionsMoved(before.Conditions, after.Conditions) {
		return true
	}
	var was, is integrationsv1.DeliveryStatus
	if before.Delivery != nil {
		was = *before.Delivery
	}
	if after.Delivery != nil {
		is = *after.Delivery
	}
	return was.CircuitState != is.CircuitState || was.DeadLettered != is.DeadLettered || was.DeadLetteredTotal != is.DeadLetteredTotal
}

// deliveriesFailing are the Healthy reasons of deliveries that fail or
// wait on their destination.
var deliveriesFailing = map[string]bool{
	ReasonDeliveriesFailing: true, ReasonEndpointGone: true, ReasonDestinationCredentialsRejected: true,
	ReasonDestinationUnreachable: true, ReasonDestinationCredentialsMissing: true,
}

// announceDelivery raises the Events of a written transition: deliveries
// starting to fail or recovering (once each, at the first failed attempt
// rather than at the first dead letter hours later), new dead letters, a
// signing secret to restore.
func (r *StatusReporter) announceDelivery(sub, original *integrationsv1.WebhookSubscription, healthy metav1.Condition,
	st store.SubscriptionStats, missing bool) {
	if missing {
		r.restoreSecret(sub)
	}
	r.announceHealth(sub, meta.FindStatusCondition(original.Status.Conditions, ConditionHealthy), healthy, deliveriesFailing,
		"DeliveriesFailing", "deliveries started failing", "DeliveriesRecovered", "deliveries succeed again")
	before := int64(0)
	if d := original.Status.Delivery; d != nil {
		// A status written before deadLetteredTotal existed kept the total in deadLettered.
		before = max(d.DeadLetteredTotal, d.DeadLettered)
	}
	if n := st.DeadLettered - before; n > 0 && r.Recorder != nil {
		r.Recorder.Eventf(sub, nil, corev1.EventTypeWarning, "DeliveriesDeadLettered", "DeadLetter",
			"%d deliveries dead-lettered; last reason: %s. Re-trigger with: kubectl annotate webhooksubscription %s %s=<new value>",
			n, st.LastDeadLetterReason, sub.Name, integrationsv1.RetriggerDeadLettersAnnotation)
	}
}

// ReasonDestinationUnreachable and ReasonDestinationCredentialsMissing:
// deliveries to a queue destination wait, since a time the message gives,
// for a broker the dispatcher cannot reach or credentials Vault lacks.
const (
	ReasonDestinationUnreachable        = store.DestinationUnreachable
	ReasonDestinationCredentialsMissing = store.DestinationCredentialsMissing
)

// ReasonDestinationCredentialsRejected: the queue destination (SQS, a
// STOMP broker) refused the credentials the subscription's Secret holds.
const ReasonDestinationCredentialsRejected = "DestinationCredentialsRejected"

// ReasonSecretMissingFromVault: the dispatcher found no signing secret in
// Vault (a restore, a dev restart); the manager puts it back.
const ReasonSecretMissingFromVault = "SecretMissingFromVault"

// secretMissing marks SigningSecretSynced false when the dispatcher has
// found the secret missing since the manager last wrote it; it reports
// whether it did.
func (r *StatusReporter) secretMissing(sub *integrationsv1.WebhookSubscription, st store.SubscriptionStats) bool {
	if st.SecretMissingSince == nil {
		return false
	}
	c := meta.FindStatusCondition(sub.Status.Conditions, ConditionSigningSecretSynced)
	// A condition's time is kept to the second: compare at that grain.
	if c == nil || c.Status != metav1.ConditionTrue || !c.LastTransitionTime.Time.Before(st.SecretMissingSince.Truncate(time.Second)) {
		return false // not synced yet, already flagged, or restored since
	}
	setCondition(&sub.Status.Conditions, sub.Generation, metav1.Condition{Type: ConditionSigningSecretSynced, Status: metav1.ConditionFalse,
		Reason: ReasonSecretMissingFromVault, Message: fmt.Sprintf("the dispatcher has found no signing secret in Vault since %s; "+
			"deliveries wait (no attempt spent) while the manager puts it back", st.SecretMissingSince.UTC().Format(time.RFC3339))})
	return true
}

// maxNote keeps an Event's note within the API's 1 kB: an error's text
// can be longer.
const maxNote = 900

// announceHealth raises an Event when a health condition (Healthy,
// Synced) turns False for one of the failing reasons, and another when it
// turns True again after one. A write happens once per transition, so
// these do; the condition's message says the why (it holds no secret).
func (r *StatusReporter) announceHealth(obj client.Object, before *metav1.Condition, after metav1.Condition, failing map[string]bool,
	failReason, failNote, okReason, okNote string) {
	if r.Recorder == nil {
		return
	}
	was := before != nil && before.Status == metav1.ConditionFalse && failing[before.Reason]
	is := after.Status == metav1.ConditionFalse && failing[after.Reason]
	switch {
	case is && !was:
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, failReason, "Observe", "%s: %s", failNote, connectors.Clip(after.Message, maxNote))
	case was && after.Status == metav1.ConditionTrue:
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, okReason, "Observe", "%s: %s", okNote, connectors.Clip(after.Message, maxNote))
	}
}

// restoreSecret says so with an Event and wakes the reconciler.
func (r *StatusReporter) restoreSecret(sub *integrationsv1.WebhookSubscription) {
	if r.Recorder != nil {
		r.Recorder.Eventf(sub, nil, corev1.EventTypeWarning, ReasonSecretMissingFromVault, "Restore",
			"the dispatcher found no signing secret in Vault; restoring it from the subscription's Kubernetes Secret")
	}
	if r.Resync != nil {
		r.Resync.Send(sub) // when the queue is full, the next report asks again
	}
}

// intakeStalls returns which stall, if any, holds up a store's events.
func (r *StatusReporter) intakeStalls(ctx context.Context) (func(storeID string) *store.IntakeStall, error) {
	stalls, err := r.Store.IntakeStalls(ctx, intakeStallFreshness)
	if err != nil {
		return nil, err
	}
	return func(storeID string) *store.IntakeStall {
		for i, st := range stalls {
			// A batch with no decodable event may hold any store's events.
			if len(st.StoreIDs) == 0 || slices.Contains(st.StoreIDs, storeID) {
				return &stalls[i]
			}
		}
		return nil
	}, nil
}

func stalledCondition(conditionType, storeID string, st store.IntakeStall) metav1.Condition {
	return metav1.Condition{Type: conditionType, Status: metav1.ConditionFalse, Reason: ReasonEventIntakeStalled,
		Message: fmt.Sprintf("events for store %s have been stuck on Kafka partition %s/%d since %s: %s; the dispatcher keeps retrying, see dispatcher_intake_blocked_seconds",
			storeID, st.Topic, st.Partition, st.Since.UTC().Format(time.RFC3339), st.Reason)}
}

// isStalled: the status still shows a stall that may since have ended.
func isStalled(conditions []metav1.Condition) bool {
	for _, c := range conditions {
		if c.Reason == ReasonEventIntakeStalled {
			return true
		}
	}
	return false
}

func deliveryStatus(st store.SubscriptionStats) *integrationsv1.DeliveryStatus {
	d := &integrationsv1.DeliveryStatus{Delivered: st.Delivered, Failed: st.FailedAttempts, DeadLettered: st.DeadLetteredNow, DeadLetteredTotal: st.DeadLettered,
		Pending: st.Pending, ConsecutiveFailures: st.ConsecutiveFailures, LastError: st.LastError,
		LastDeadLetterReason: st.LastDeadLetterReason, CircuitState: cmp.Or(st.CircuitState, "closed")}
	if st.LastAttemptAt != nil {
		t := metav1.NewTime(st.LastAttemptAt.UTC().Truncate(time.Second))
		d.LastAttemptTime = &t
	}
	if st.LastHTTPStatus != nil {
		d.LastHTTPStatus = *st.LastHTTPStatus
	}
	return d
}

func healthyCondition(st store.SubscriptionStats, known bool) metav1.Condition {
	switch {
	case known && st.DestinationDownSince != nil:
		since := st.DestinationDownSince.UTC().Format(time.RFC3339)
		if st.DestinationDownReason == store.DestinationCredentialsMissing {
			return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionFalse, Reason: ReasonDestinationCredentialsMissing,
				Message: fmt.Sprintf("the destination's credentials have been missing from Vault since %s; deliveries wait (no attempt spent) "+
					"until the manager copies them from the referenced Secret, then past the dispatcher's --destination-unreachable-max-age are dead-lettered", since)}
		}
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionFalse, Reason: ReasonDestinationUnreachable,
			Message: fmt.Sprintf("the destination has been unreachable since %s: %s; deliveries wait (no attempt spent) "+
				"and past the dispatcher's --destination-unreachable-max-age are dead-lettered", since, st.LastError)}
	case !known || st.LastAttemptAt == nil:
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionTrue, Reason: ReasonNoDeliveriesYet, Message: "no delivery attempted yet"}
	case st.ConsecutiveFailures == 0:
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionTrue, Reason: ReasonDelivering, Message: "the last delivery succeeded"}
	case strings.HasPrefix(st.LastError, destinations.CredentialsRejectedPrefix):
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionFalse, Reason: ReasonDestinationCredentialsRejected,
			Message: fmt.Sprintf("%d attempts in a row failed: %s; fix the credentials in the destination's Secret (they are copied to Vault on change); "+
				"deliveries are retried on the schedule, then dead-lettered", st.ConsecutiveFailures, st.LastError)}
	case strings.Contains(st.LastError, "410 Gone"):
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionFalse, Reason: ReasonEndpointGone,
			Message: "the endpoint answered 410 Gone and no longer accepts deliveries; fix targetURL or delete the subscription"}
	}
	return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionFalse, Reason: ReasonDeliveriesFailing,
		Message: fmt.Sprintf("%d attempts in a row failed; last: %s", st.ConsecutiveFailures, st.LastError)}
}
