-- The dead letters a subscription (or a connector) has now, beside the
-- running total: a re-trigger that re-queues dead letters lowers it, and
-- retention dropping them lowers it too, so the DEAD column says what is
-- left to re-trigger rather than everything ever given up on. The outcome
-- batches add to both in the statement that adds to the total; a re-trigger
-- and a retention pass subtract in the statement that moves or drops the
-- rows. Counting the rows at every status pass instead would scan up to the
-- retention period's dead letters every few seconds.

-- +goose Up
ALTER TABLE webhook_subscription_stats ADD COLUMN dead_lettered_now BIGINT NOT NULL DEFAULT 0;
ALTER TABLE connector_stats ADD COLUMN outbound_dead_lettered_now BIGINT NOT NULL DEFAULT 0;

-- Once, from the rows: what is dead-lettered at the upgrade.
UPDATE webhook_subscription_stats s SET dead_lettered_now = d.n
FROM (SELECT subscription_id, count(*) AS n FROM webhook_deliveries WHERE status = 'DEAD_LETTERED' GROUP BY subscription_id) d
WHERE d.subscription_id = s.subscription_id;
UPDATE connector_stats s SET outbound_dead_lettered_now = d.n
FROM (SELECT config_id, count(*) AS n FROM connector_deliveries WHERE status = 'DEAD_LETTERED' GROUP BY config_id) d
WHERE d.config_id = s.config_id;

-- +goose Down
ALTER TABLE connector_stats DROP COLUMN outbound_dead_lettered_now;
ALTER TABLE webhook_subscription_stats DROP COLUMN dead_lettered_now;
