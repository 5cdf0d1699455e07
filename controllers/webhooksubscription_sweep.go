package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// WebhookSubscriptionSweeper removes what the operator wrote for
// subscriptions that no longer exist, since a finalizer can be bypassed
// (force-removed, or the object deleted while the operator was not running):
// Vault secrets are deleted and rows marked inactive.
type WebhookSubscriptionSweeper struct {
	Client   client.Reader
	Store    *store.Store
	Vault    *vault.Client
	Metrics  *Metrics
	Interval time.Duration
	Log      logr.Logger
}

// Start runs a sweep every Interval until ctx ends; as a manager Runnable it
// runs on the leader only.
func (s *WebhookSubscriptionSweeper) Start(ctx context.Context) error {
	every(ctx, s.Interval, s.Log, "orphan sweep", s.Sweep)
	return nil
}

// Sweep removes orphans once.
func (s *WebhookSubscriptionSweeper) Sweep(ctx context.Context) error {
	// Read what we wrote before listing the objects: anything written after a
	// reconcile saw its object, so the object list below includes it.
	folders, err := s.Vault.List(ctx, "webhook")
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	rows, err := s.Store.ActiveSubscriptionIDsUpdatedBefore(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	var subs integrationsv1.WebhookSubscriptionList
	if err := s.Client.List(ctx, &subs); err != nil {
		return fmt.Errorf("sweep: list subscriptions: %w", err)
	}
	live := make(map[uuid.UUID]bool, len(subs.Items))
	for _, sub := range subs.Items {
		if id, err := uuid.Parse(string(sub.UID)); err == nil {
			live[id] = true
		}
	}
	for _, folder := range folders {
		id, err := uuid.Parse(strings.TrimSuffix(folder, "/"))
		if err != nil || live[id] {
			continue
		}
		if err := s.Vault.Delete(ctx, webhookSecretPath(id)); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		s.Metrics.VaultWrites.WithLabelValues(kindWebhookSubscription, "sweep").Inc()
		s.Log.Info("deleted the signing secret of a subscription that no longer exists", "subscriptionId", id)
	}
	for _, id := range rows {
		if live[id] {
			continue
		}
		if wrote, err := s.Store.DeactivateSubscription(ctx, id); err != nil {
			return fmt.Errorf("sweep: %w", err)
		} else if wrote {
			s.Metrics.DatabaseWrites.WithLabelValues("webhook_subscriptions").Inc()
			s.Log.Info("deactivated the row of a subscription that no longer exists", "subscriptionId", id)
		}
	}
	return nil
}
