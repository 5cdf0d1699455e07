package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
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
// connector's sync health, at most once per Interval per object and only
// when it changed, with Events for what a store admin must act on. It runs
// on the leader.
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
}

// Start reports every Interval until ctx ends.
func (r *StatusReporter) Start(ctx context.Context) error {
	every(ctx, orDefault(r.Interval, 10*time.Second), r.Log, "reporting status", func(ctx context.Context) error {
		return errors.Join(r.ReportDeliveries(ctx), r.ReportConnectors(ctx))
	})
	return nil
}

// ReportDeliveries brings every subscription's delivery status up to date once.
func (r *StatusReporter) ReportDeliveries(ctx context.Context) error {
	stats, err := r.Store.SubscriptionStatsAll(ctx)
	if err != nil {
		return err
	}
	stalled, err := r.intakeStalls(ctx)
	if err != nil {
		return err
	}
	var subs integrationsv1.WebhookSubscriptionList
	if err := r.Client.List(ctx, &subs); err != nil {
		return fmt.Errorf("list subscriptions: %w", err)
	}
	for i := range subs.Items {
		sub := &subs.Items[i]
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
		if equality.Semantic.DeepEqual(original.Status, sub.Status) {
			continue
		}
		if err := patchStatusIfChanged(ctx, r.Client, original, sub, original.Status, sub.Status); err != nil {
			// A conflict means the reconciler just wrote; next interval catches up.
			r.Log.V(1).Info("delivery status not written this interval", "subscription", client.ObjectKeyFromObject(sub), "error", err.Error())
			continue
		}
		if missing {
			r.restoreSecret(sub)
		}
		before := int64(0)
		if original.Status.Delivery != nil {
			before = original.Status.Delivery.DeadLettered
		}
		if n := st.DeadLettered - before; n > 0 && r.Recorder != nil {
			r.Recorder.Eventf(sub, nil, corev1.EventTypeWarning, "DeliveriesDeadLettered", "DeadLetter",
				"%d deliveries dead-lettered; last reason: %s. Re-trigger with: kubectl annotate webhooksubscription %s %s=<new value>",
				n, st.LastDeadLetterReason, sub.Name, integrationsv1.RetriggerDeadLettersAnnotation)
		}
	}
	return nil
}

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
	setReady(&sub.Status.Conditions, sub.Generation, ConditionSigningSecretSynced, ConditionDatabaseSynced)
	return true
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
	d := &integrationsv1.DeliveryStatus{Delivered: st.Delivered, Failed: st.FailedAttempts, DeadLettered: st.DeadLettered,
		Pending: st.Pending, ConsecutiveFailures: st.ConsecutiveFailures, LastError: st.LastError,
		LastDeadLetterReason: st.LastDeadLetterReason, CircuitState: st.CircuitState}
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
	case !known || st.LastAttemptAt == nil:
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionTrue, Reason: ReasonNoDeliveriesYet, Message: "no delivery attempted yet"}
	case st.ConsecutiveFailures == 0:
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionTrue, Reason: ReasonDelivering, Message: "the last delivery succeeded"}
	case strings.Contains(st.LastError, "410 Gone"):
		return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionFalse, Reason: ReasonEndpointGone,
			Message: "the endpoint answered 410 Gone and no longer accepts deliveries; fix targetURL or delete the subscription"}
	}
	return metav1.Condition{Type: ConditionHealthy, Status: metav1.ConditionFalse, Reason: ReasonDeliveriesFailing,
		Message: fmt.Sprintf("%d attempts in a row failed; last: %s", st.ConsecutiveFailures, st.LastError)}
}
