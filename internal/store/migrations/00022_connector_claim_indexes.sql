-- Claiming connector work must not depend on fresh planner statistics. A
-- burst of events into a day's partition that autovacuum has not analysed
-- yet had the planner probe each candidate's entity order through the
-- (config_id) index, filtering every queued row per candidate: 20,000
-- queued inventory updates took 104 s to claim 200 of. One index now
-- serves both the per-connector queued count and the entity-order probe,
-- so the probe has no worse index to pick; and the due index carries seq,
-- the claim's second sort key, so a claim reads candidates in order and
-- stops at its limit instead of judging every due row first.

-- +goose Up
DROP INDEX connector_deliveries_due_idx;
DROP INDEX connector_deliveries_queued_idx;
DROP INDEX connector_deliveries_entity_idx;
CREATE INDEX connector_deliveries_due_idx ON connector_deliveries (next_retry_at, seq) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_queued_idx ON connector_deliveries (config_id, entity_key, seq) WHERE status IN ('PENDING', 'FAILED');

-- +goose Down
DROP INDEX connector_deliveries_due_idx;
DROP INDEX connector_deliveries_queued_idx;
CREATE INDEX connector_deliveries_due_idx ON connector_deliveries (next_retry_at) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_queued_idx ON connector_deliveries (config_id) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_entity_idx ON connector_deliveries (config_id, entity_key, seq)
    WHERE status IN ('PENDING', 'FAILED') AND entity_key IS NOT NULL;
