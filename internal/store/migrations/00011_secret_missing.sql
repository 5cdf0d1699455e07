-- When the dispatcher finds a subscription's signing secret missing from
-- Vault (a restore, a dev restart), it says so here; the manager shows it on
-- the subscription and puts the secret back at once instead of at its next
-- resync. A delivery that succeeds clears it.

-- +goose Up
ALTER TABLE webhook_subscription_stats ADD COLUMN secret_missing_since TIMESTAMPTZ;

-- +goose Down
ALTER TABLE webhook_subscription_stats DROP COLUMN secret_missing_since;
