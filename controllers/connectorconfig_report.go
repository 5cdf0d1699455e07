package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/store"
)

// ConditionSynced says whether the connector's newest sync run succeeded.
const ConditionSynced = "Synced"

// Synced condition reasons.
const (
	ReasonNoSyncYet     = "NoSyncYet"
	ReasonSyncSucceeded = "SyncSucceeded"
	ReasonSyncRunning   = "SyncRunning"
	ReasonSyncPartial   = "SyncPartiallyFailed"
	ReasonSyncFailed    = "SyncFailed"
)

// ReportConnectors runs one pass over the connectors.
func (r *StatusReporter) ReportConnectors(ctx context.Context) error {
	return r.pass(ctx, r.connectorWrites)
}

// connectorWrites computes each connector's sync status and the patches
// that bring it up to date.
func (r *StatusReporter) connectorWrites(ctx context.Context) ([]statusWrite, error) {
	healths, err := r.Store.ConnectorHealths(ctx)
	if err != nil {
		return nil, err
	}
	stalled, err := r.intakeStalls(ctx)
	if err != nil {
		return nil, err
	}
	var list integrationsv1.ConnectorConfigList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list connectors: %w", err)
	}
	var writes []statusWrite
	listed := map[types.UID]bool{}
	for i := range list.Items {
		cc := &list.Items[i]
		listed[cc.UID] = true
		id, err := uuid.Parse(string(cc.UID))
		if err != nil || !cc.DeletionTimestamp.IsZero() {
			continue
		}
		h, ok := healths[id]
		if !ok {
			continue
		}
		original := cc.DeepCopy()
		applyHealth(&cc.Status, h)
		synced := syncedCondition(h)
		if stall := stalled(string(cc.Spec.StoreID)); stall != nil {
			synced = stalledCondition(ConditionSynced, string(cc.Spec.StoreID), *stall)
		}
		setCondition(&cc.Status.Conditions, cc.Generation, synced)
		if equality.Semantic.DeepEqual(original.Status, cc.Status) {
			continue
		}
		writes = append(writes, statusWrite{kind: "ConnectorConfig", uid: cc.UID,
			health: connectorHealthMoved(&original.Status, &cc.Status),
			patch: func(ctx context.Context) error {
				return patchStatusIfChanged(ctx, r.Client, original, cc, original.Status, cc.Status)
			},
			after: func() { r.announce(cc, original.Status, synced, h) }})
	}
	r.budget.forget("ConnectorConfig", listed)
	return writes, nil
}

// connectorHealthMoved: a condition, the newest sync's outcome, or new
// rejections or dead letters (or dead letters re-triggered), which raise
// Events; not only counters.
func connectorHealthMoved(before, after *integrationsv1.ConnectorConfigStatus) bool {
	if conditionsMoved(before.Conditions, after.Conditions) {
		return true
	}
	var rejected, dead, deadTotal [2]int64
	var sync [2]string
	for i, st := range []*integrationsv1.ConnectorConfigStatus{before, after} {
		if st.Inbound != nil {
			rejected[i] = st.Inbound.Rejected
		}
		if st.Outbound != nil {
			dead[i], deadTotal[i] = st.Outbound.DeadLettered, st.Outbound.DeadLetteredTotal
		}
		if st.LastSync != nil {
			sync[i] = st.LastSync.Status
		}
	}
	return rejected[0] != rejected[1] || dead[0] != dead[1] || deadTotal[0] != deadTotal[1] || sync[0] != sync[1]
}

// syncFailing are the Synced reasons of a connector whose syncs fail.
var syncFailing = map[string]bool{ReasonSyncFailed: true, ReasonSyncPartial: true}

func (r *StatusReporter) announce(cc *integrationsv1.ConnectorConfig, before integrationsv1.ConnectorConfigStatus, synced metav1.Condition,
	h store.ConnectorHealth) {
	if r.Recorder == nil {
		return
	}
	r.announceHealth(cc, meta.FindStatusCondition(before.Conditions, ConditionSynced), synced, syncFailing,
		"SyncFailing", "syncs started failing", "SyncRecovered", "syncs succeed again")
	var rejectedBefore, deadBefore int64
	if before.Inbound != nil {
		rejectedBefore = before.Inbound.Rejected
	}
	if o := before.Outbound; o != nil {
		// A status written before deadLetteredTotal existed kept the total in deadLettered.
		deadBefore = max(o.DeadLetteredTotal, o.DeadLettered)
	}
	if n := h.InboundRejected - rejectedBefore; n > 0 {
		r.Recorder.Eventf(cc, nil, corev1.EventTypeWarning, "WebhooksRejected", "Verify",
			"%d provider webhooks rejected; last reason: %s", n, h.LastRejectReason)
	}
	if n := h.DeadLettered - deadBefore; n > 0 && h.LastSync != nil {
		r.Recorder.Eventf(cc, nil, corev1.EventTypeWarning, "SyncDeadLettered", "Sync",
			"%d events given up on; newest failure: %s. Re-trigger with: kubectl annotate connectorconfig %s %s=<new value>",
			n, h.LastSync.ErrorSummary, cc.Name, integrationsv1.RetriggerDeadLettersAnnotation)
	}
}

func applyHealth(st *integrationsv1.ConnectorConfigStatus, h store.ConnectorHealth) {
	if s := h.LastSync; s != nil {
		at := s.FinishedAt
		if s.Status == store.SyncRunning {
			at = s.StartedAt
		}
		st.LastSync = &integrationsv1.SyncStatus{Direction: s.Direction, EntityType: s.EntityType, RecordCount: s.RecordCount,
			Status: s.Status, ErrorSummary: s.ErrorSummary, Time: metav1.NewTime(at.UTC().Truncate(time.Second))}
	}
	if h.Pending+h.Delivered+h.FailedAttempts+h.DeadLettered > 0 {
		st.Outbound = &integrationsv1.ConnectorOutboundStatus{Pending: h.Pending, Delivered: h.Delivered, Failed: h.FailedAttempts,
			DeadLettered: h.DeadLetteredNow, DeadLetteredTotal: h.DeadLettered}
	}
	if h.InboundAccepted+h.InboundDuplicates+h.InboundRejected > 0 {
		in := &integrationsv1.ConnectorInboundStatus{Accepted: h.InboundAccepted, Duplicates: h.InboundDuplicates,
			Rejected: h.InboundRejected, LastRejectReason: h.LastRejectReason}
		if h.LastRejectedAt != nil {
			t := metav1.NewTime(h.LastRejectedAt.UTC().Truncate(time.Second))
			in.LastRejectedTime = &t
		}
		st.Inbound = in
	}
}

func syncedCondition(h store.ConnectorHealth) metav1.Condition {
	s := h.LastSync
	if s == nil {
		return metav1.Condition{Type: ConditionSynced, Status: metav1.ConditionTrue, Reason: ReasonNoSyncYet, Message: "nothing synced yet"}
	}
	what := fmt.Sprintf("%s %s run", s.Direction, s.EntityType)
	switch s.Status {
	case store.SyncRunning:
		return metav1.Condition{Type: ConditionSynced, Status: metav1.ConditionTrue, Reason: ReasonSyncRunning, Message: what + " in progress"}
	case store.SyncSucceeded:
		return metav1.Condition{Type: ConditionSynced, Status: metav1.ConditionTrue, Reason: ReasonSyncSucceeded,
			Message: fmt.Sprintf("%s synced %d records", what, s.RecordCount)}
	case store.SyncPartial:
		return metav1.Condition{Type: ConditionSynced, Status: metav1.ConditionFalse, Reason: ReasonSyncPartial,
			Message: fmt.Sprintf("%s synced %d records; %s", what, s.RecordCount, s.ErrorSummary)}
	}
	return metav1.Condition{Type: ConditionSynced, Status: metav1.ConditionFalse, Reason: ReasonSyncFailed,
		Message: fmt.Sprintf("%s failed: %s (retrying with backoff)", what, s.ErrorSummary)}
}
