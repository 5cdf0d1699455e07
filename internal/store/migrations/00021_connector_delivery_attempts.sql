-- Every attempt of a connector delivery, not just its last: one row per
-- call of the adapter that spent an attempt, written in the transaction
-- that records the batch's outcomes, as webhook_delivery_attempts is for
-- webhooks (00017). Partitioned by day on the delivery's own event_time
-- (as connector_deliveries is) and kept by the retention job under its own
-- period. No unique key: a re-queued delivery counts its attempts from 1
-- again, and started_at orders them.

-- +goose Up
CREATE TABLE connector_delivery_attempts (
    delivery_id      UUID        NOT NULL,
    event_time       TIMESTAMPTZ NOT NULL,
    attempt_number   INTEGER     NOT NULL CHECK (attempt_number >= 1),
    -- When the adapter was called, and for how long: one call hands it the
    -- batch, so a batch's attempts share both.
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      INTEGER     NOT NULL CHECK (duration_ms >= 0),
    -- What the attempt made of the delivery.
    status           TEXT        NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD_LETTERED')),
    -- The marketplace's answer, when the adapter's error carries it (a
    -- non-2xx answer): its status and first bytes, made storable.
    http_status      INTEGER,
    response_excerpt TEXT,
    response_excerpt_sanitised BOOLEAN NOT NULL DEFAULT false,
    -- The adapter's error as last_error has it, cut to a KiB.
    error            TEXT,
    -- The dispatcher replica (its pod's name) that made the attempt.
    replica          TEXT        NOT NULL
) PARTITION BY RANGE (event_time);
CREATE TABLE connector_delivery_attempts_default PARTITION OF connector_delivery_attempts DEFAULT;
SELECT io_create_day_partitions('connector_delivery_attempts', 'event_time',
    io_first_day(NULL), (now() AT TIME ZONE 'UTC')::date + 7);
CREATE INDEX connector_delivery_attempts_delivery_idx ON connector_delivery_attempts (delivery_id, event_time, started_at);

-- +goose Down
DROP TABLE connector_delivery_attempts;
