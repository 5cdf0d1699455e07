package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ConnectorConfig is a connector_configs row; Settings holds only
// non-sensitive options, as JSON.
type ConnectorConfig struct {
	ID                 uuid.UUID
	StoreID            string
	ConnectorType      string
	DisplayName        string
	IsActive           bool
	EventSubscriptions []string
	Settings           json.RawMessage
	// PollInterval is how often the connector is polled (0: the default, 5m).
	PollInterval time.Duration
}

// UpsertConnectorConfig makes the row match c, writing only when something
// differs; it reports whether it wrote.
func (s *Store) UpsertConnectorConfig(ctx context.Context, c ConnectorConfig) (bool, error) {
	events := slices.Clone(c.EventSubscriptions)
	slices.Sort(events)
	if events == nil {
		events = []string{}
	}
	settings := c.Settings
	if len(settings) == 0 {
		settings = json.RawMessage(`{}`)
	}
	interval := int32(c.PollInterval / time.Second)
	if interval <= 0 {
		interval = 300
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO connector_configs AS c (config_id, store_id, connector_type, display_name, is_active, event_subscriptions, settings,
			poll_interval_seconds)
		VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
		ON CONFLICT (config_id) DO UPDATE
		SET store_id = EXCLUDED.store_id, connector_type = EXCLUDED.connector_type, display_name = EXCLUDED.display_name,
		    is_active = EXCLUDED.is_active, event_subscriptions = EXCLUDED.event_subscriptions, settings = EXCLUDED.settings,
		    poll_interval_seconds = EXCLUDED.poll_interval_seconds, updated_at = now()
		WHERE (c.store_id, c.connector_type, c.display_name, c.is_active, c.event_subscriptions, c.settings, c.poll_interval_seconds)
		      IS DISTINCT FROM (EXCLUDED.store_id, EXCLUDED.connector_type, EXCLUDED.display_name, EXCLUDED.is_active,
		                        EXCLUDED.event_subscriptions, EXCLUDED.settings, EXCLUDED.poll_interval_seconds)`,
		c.ID, c.StoreID, c.ConnectorType, c.DisplayName, c.IsActive, events, string(settings), interval)
	if err != nil {
		return false, fmt.Errorf("upsert connector config %s: %w", c.ID, err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeactivateConnectorConfig marks the row inactive and deleted, keeping it
// and its sync log for audit; the dispatcher ends its waiting events.
func (s *Store) DeactivateConnectorConfig(ctx context.Context, id uuid.UUID) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE connector_configs SET is_active = false, deleted_at = now(), updated_at = now()
		WHERE config_id = $1 AND deleted_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("deactivate connector config %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// GetConnectorConfig reads one row; ok is false when there is none.
func (s *Store) GetConnectorConfig(ctx context.Context, id uuid.UUID) (ConnectorConfig, bool, error) {
	var c ConnectorConfig
	var settings string
	var interval int32
	err := s.pool.QueryRow(ctx, `SELECT `+connectorColumns+` FROM connector_configs WHERE config_id = $1`, id).
		Scan(&c.ID, &c.StoreID, &c.ConnectorType, &c.DisplayName, &c.IsActive, &c.EventSubscriptions, &settings, &interval)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return c, false, nil
		}
		return c, false, fmt.Errorf("get connector config %s: %w", id, err)
	}
	c.Settings = json.RawMessage(settings)
	c.PollInterval = time.Duration(interval) * time.Second
	return c, true, nil
}

const connectorColumns = `config_id, store_id, connector_type, display_name, is_active, event_subscriptions, settings::text, poll_interval_seconds`

// ActiveConnectorConfigs lists the active connectors, for routing events.
func (s *Store) ActiveConnectorConfigs(ctx context.Context) ([]ConnectorConfig, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+connectorColumns+` FROM connector_configs WHERE is_active`)
	if err != nil {
		return nil, fmt.Errorf("list active connectors: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ConnectorConfig, error) {
		var c ConnectorConfig
		var settings string
		var interval int32
		err := row.Scan(&c.ID, &c.StoreID, &c.ConnectorType, &c.DisplayName, &c.IsActive, &c.EventSubscriptions, &settings, &interval)
		c.Settings, c.PollInterval = json.RawMessage(settings), time.Duration(interval)*time.Second
		return c, err
	})
}
