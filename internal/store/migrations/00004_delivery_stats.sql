-- Delivery health per subscription, kept up to date by the dispatcher's
-- batched outcome writes and read by the manager to report onto each
-- WebhookSubscription's status; and an index that counts pending work per
-- subscription without touching delivered history.

-- +goose Up
CREATE TABLE webhook_subscription_stats (
    subscription_id       UUID PRIMARY KEY REFERENCES webhook_subscriptions (subscription_id),
    delivered_total       BIGINT      NOT NULL DEFAULT 0,
    failed_attempts_total BIGINT      NOT NULL DEFAULT 0,
    dead_lettered_total   BIGINT      NOT NULL DEFAULT 0,
    consecutive_failures  INTEGER     NOT NULL DEFAULT 0,
    last_attempt_at       TIMESTAMPTZ,
    last_http_status      INTEGER,
    last_error            TEXT,
    last_dead_letter_reason TEXT,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX webhook_deliveries_open_by_subscription_idx ON webhook_deliveries (subscription_id)
    WHERE status IN ('PENDING', 'FAILED');

-- +goose Down
DROP INDEX webhook_deliveries_open_by_subscription_idx;
DROP TABLE webhook_subscription_stats;
