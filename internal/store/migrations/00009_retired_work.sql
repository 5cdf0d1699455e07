-- A deleted subscription or connector is kept (for audit) but marked, so
-- its waiting work can be ended with that reason rather than wait for
-- ever; a paused one (inactive, not deleted) holds its work unclaimed.

-- +goose Up
ALTER TABLE webhook_subscriptions ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE connector_configs ADD COLUMN deleted_at TIMESTAMPTZ;
CREATE INDEX webhook_subscriptions_inactive_idx ON webhook_subscriptions (subscription_id) WHERE NOT is_active;
CREATE INDEX connector_configs_inactive_idx ON connector_configs (config_id) WHERE NOT is_active;

-- +goose Down
DROP INDEX connector_configs_inactive_idx;
DROP INDEX webhook_subscriptions_inactive_idx;
ALTER TABLE connector_configs DROP COLUMN deleted_at;
ALTER TABLE webhook_subscriptions DROP COLUMN deleted_at;
