-- What the dispatcher needs beyond the platform's columns: per-subscription
-- delivery settings, and claims (leases) on deliveries so replicas share the
-- work and a dead replica's work is taken over.

-- +goose Up
ALTER TABLE webhook_subscriptions
    ADD COLUMN delivery_timeout_ms INTEGER NOT NULL DEFAULT 30000 CHECK (delivery_timeout_ms > 0),
    ADD COLUMN signature_scheme    TEXT    NOT NULL DEFAULT 'SS3' CHECK (signature_scheme IN ('SS3', 'StandardWebhooks'));

ALTER TABLE webhook_deliveries
    ADD COLUMN claimed_until TIMESTAMPTZ,
    ADD COLUMN last_error    TEXT;

-- +goose Down
ALTER TABLE webhook_deliveries DROP COLUMN last_error, DROP COLUMN claimed_until;
ALTER TABLE webhook_subscriptions DROP COLUMN signature_scheme, DROP COLUMN delivery_timeout_ms;
