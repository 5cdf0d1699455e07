package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// OrphanSweeper removes what the operator wrote for WebhookSubscriptions and
// ConnectorConfigs that no longer exist, since a finalizer can be bypassed
// (force-removed, or the object deleted while the operator was not running):
// their Vault secrets are deleted and their rows marked inactive.
type OrphanSweeper struct {
	Client   client.Reader
	Store    *store.Store
	Vault    *vault.Client
	Metrics  *Metrics
	Interval time.Duration
	Log      logr.Logger
}

// Start runs a sweep every Interval until ctx ends; as a manager Runnable it
// runs on the leader only.
func (s *OrphanSweeper) Start(ctx context.Context) error {
	every(ctx, s.Interval, s.Log, "orphan sweep", s.Sweep)
	return nil
}

// sweptKind is what the sweeper needs to know of one kind.
type sweptKind struct {
	kind, table, vaultFolder string
	list                     client.ObjectList
	activeRows               func(context.Context) ([]uuid.UUID, error)
	vaultPaths               func(uuid.UUID) []string
	deactivate               func(context.Context, uuid.UUID) (bool, error)
}

func (s *OrphanSweeper) kinds() []sweptKind {
	return []sweptKind{{
		kind: kindWebhookSubscription, table: "webhook_subscriptions", vaultFolder: "webhook",
		list: &integrationsv1.WebhookSubscriptionList{},
		activeRows: func(ctx context.Context) ([]uuid.UUID, error) {
			return s.Store.ActiveSubscriptionIDsUpdatedBefore(ctx, time.Now())
		},
		vaultPaths: func(id uuid.UUID) []string { return []string{webhookSecretPath(id), destinationPath(id)} },
		deactivate: s.Store.DeactivateSubscription,
	}, {
		kind: kindConnectorConfig, table: "connector_configs", vaultFolder: "connector",
		list: &integrationsv1.ConnectorConfigList{},
		activeRows: func(ctx context.Context) ([]uuid.UUID, error) {
			rows, err := s.Store.ActiveConnectorConfigs(ctx)
			ids := make([]uuid.UUID, len(rows))
			for i, r := range rows {
				ids[i] = r.ID
			}
			return ids, err
		},
		vaultPaths: func(id uuid.UUID) []string {
			return []string{connectorPath(id, connectors.CredentialAPIKey), connectorPath(id, connectors.CredentialAPISecret),
				connectorPath(id, connectors.CredentialRefreshToken)}
		},
		deactivate: s.Store.DeactivateConnectorConfig,
	}, {
		// A credential keeps nothing in Vault; the row of one whose
		// finalizer was forced off during an outage would stay valid for
		// ever, so it is revoked.
		kind: "ApiCredential", table: "api_credentials",
		list:       &integrationsv1.ApiCredentialList{},
		activeRows: s.Store.UnrevokedCredentialIDs,
		deactivate: s.Store.RevokeCredential,
	}}
}

// Sweep removes orphans of every kind once.
func (s *OrphanSweeper) Sweep(ctx context.Context) error {
	for _, k := range s.kinds() {
		if err := s.sweep(ctx, k); err != nil {
			return fmt.Errorf("sweep %s: %w", k.kind, err)
		}
	}
	return nil
}

func (s *OrphanSweeper) sweep(ctx context.Context, k sweptKind) error {
	// Read what we wrote before listing the objects: anything written after a
	// reconcile saw its object, so the object list below includes it.
	var folders []string
	if k.vaultFolder != "" {
		var err error
		if folders, err = s.Vault.List(ctx, k.vaultFolder); err != nil {
			return err
		}
	}
	rows, err := k.activeRows(ctx)
	if err != nil {
		return err
	}
	if err := s.Client.List(ctx, k.list); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	live := map[uuid.UUID]bool{}
	err = meta.EachListItem(k.list, func(o runtime.Object) error {
		if id, err := uuid.Parse(string(o.(metav1.Object).GetUID())); err == nil {
			live[id] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, folder := range folders {
		id, err := uuid.Parse(strings.TrimSuffix(folder, "/"))
		if err != nil || live[id] {
			continue
		}
		for _, path := range k.vaultPaths(id) {
			if err := s.Vault.Delete(ctx, path); err != nil {
				return err
			}
		}
		s.Metrics.VaultWrites.WithLabelValues(k.kind, "sweep").Inc()
		s.Log.Info("deleted the Vault secrets of an object that no longer exists", "kind", k.kind, "id", id)
	}
	for _, id := range rows {
		if live[id] {
			continue
		}
		if wrote, err := k.deactivate(ctx, id); err != nil {
			return err
		} else if wrote {
			s.Metrics.DatabaseWrites.WithLabelValues(k.table).Inc()
			s.Log.Info("deactivated the row of an object that no longer exists", "kind", k.kind, "id", id)
		}
	}
	return nil
}
