-- Retention takes a dropped day's dead letters off the DEAD counts
-- (migration 00020) by counting them in the partition it drops; without an
-- index that count read every row of the day (10 million rows: seconds of
-- a scan inside the drop). Dead letters are few, so a partial index of
-- them costs the hot path nothing and makes the count read only them.

-- +goose Up
CREATE INDEX webhook_deliveries_dead_idx ON webhook_deliveries (subscription_id) WHERE status = 'DEAD_LETTERED';
CREATE INDEX connector_deliveries_dead_idx ON connector_deliveries (config_id) WHERE status = 'DEAD_LETTERED';

-- +goose Down
DROP INDEX connector_deliveries_dead_idx;
DROP INDEX webhook_deliveries_dead_idx;
