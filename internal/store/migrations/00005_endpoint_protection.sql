-- Per-subscription protection of the receiving endpoint, and the circuit
-- breaker's state for the status.

-- +goose Up
ALTER TABLE webhook_subscriptions
    ADD COLUMN max_concurrency       INTEGER NOT NULL DEFAULT 10 CHECK (max_concurrency > 0),
    ADD COLUMN rate_limit_per_second DOUBLE PRECISION CHECK (rate_limit_per_second > 0),
    ADD COLUMN rate_limit_burst      INTEGER CHECK (rate_limit_burst > 0);
ALTER TABLE webhook_subscription_stats
    ADD COLUMN circuit_state TEXT NOT NULL DEFAULT 'closed';

-- +goose Down
ALTER TABLE webhook_subscription_stats DROP COLUMN circuit_state;
ALTER TABLE webhook_subscriptions DROP COLUMN rate_limit_burst, DROP COLUMN rate_limit_per_second, DROP COLUMN max_concurrency;
