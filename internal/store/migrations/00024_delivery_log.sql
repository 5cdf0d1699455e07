-- The delivery log (kubectl get/describe/-w of deliveries, served from
-- here by the aggregated API server) lists one owner's deliveries newest
-- first, a page at a time, and watches them change.
--
-- Listing reads (subscription_id | config_id, event_time DESC,
-- delivery_id DESC): the newest page of one owner is the first entries of
-- each day's index, however many rows the table holds, and a page's
-- cursor is where the next starts. Dead letters, rare, have their own
-- partial index in that order (it replaces 00023's, whose count by owner
-- it still serves): a log filtered to them does not walk the owner's whole
-- history to find a few.
--
-- Watching reads the attempts recorded since its last poll: recorded_at is
-- when an attempt was written (its recording transaction's start: it
-- becomes visible at commit, a moment later). now() is stable, so adding
-- the column with it as default stores one value for the existing rows in
-- the catalogue and rewrites nothing. Attempts are only ever inserted, so
-- their heap is in recorded_at order and a BRIN index (a few pages per
-- partition, summarised as ranges fill) finds the recent ones.

-- +goose Up
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (subscription_id, event_time DESC, delivery_id DESC);
CREATE INDEX connector_deliveries_log_idx ON connector_deliveries (config_id, event_time DESC, delivery_id DESC);

DROP INDEX webhook_deliveries_dead_idx;
DROP INDEX connector_deliveries_dead_idx;
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (subscription_id, event_time DESC, delivery_id DESC)
    WHERE status = 'DEAD_LETTERED';
CREATE INDEX connector_deliveries_dead_idx ON connector_deliveries (config_id, event_time DESC, delivery_id DESC)
    WHERE status = 'DEAD_LETTERED';

ALTER TABLE webhook_delivery_attempts ADD COLUMN recorded_at TIMESTAMPTZ NOT NULL DEFAULT now();
ALTER TABLE connector_delivery_attempts ADD COLUMN recorded_at TIMESTAMPTZ NOT NULL DEFAULT now();
CREATE INDEX webhook_delivery_attempts_recorded_idx ON webhook_delivery_attempts USING brin (recorded_at) WITH (autosummarize = on);
CREATE INDEX connector_delivery_attempts_recorded_idx ON connector_delivery_attempts USING brin (recorded_at) WITH (autosummarize = on);

-- +goose Down
DROP INDEX connector_delivery_attempts_recorded_idx;
DROP INDEX webhook_delivery_attempts_recorded_idx;
ALTER TABLE connector_delivery_attempts DROP COLUMN recorded_at;
ALTER TABLE webhook_delivery_attempts DROP COLUMN recorded_at;

DROP INDEX connector_deliveries_dead_idx;
DROP INDEX webhook_deliveries_dead_idx;
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (subscription_id) WHERE status = 'DEAD_LETTERED';
CREATE INDEX connector_deliveries_dead_idx ON connector_deliveries (config_id) WHERE status = 'DEAD_LETTERED';

DROP INDEX connector_deliveries_log_idx;
DROP INDEX webhook_deliveries_log_idx;
