-- Every attempt of a webhook delivery, not just its last: one row per
-- attempt, written in the transaction that records the batch's outcomes.
-- Partitioned by day on the delivery's own event_time (as its delivery is,
-- so that a delivery and its attempts are found by one partition's key)
-- and kept, like the rest of the history, by the retention job under its
-- own period. No unique key: a re-triggered delivery counts its attempts
-- from 1 again, and started_at orders them.

-- +goose Up
CREATE TABLE webhook_delivery_attempts (
    delivery_id      UUID        NOT NULL,
    event_time       TIMESTAMPTZ NOT NULL,
    attempt_number   INTEGER     NOT NULL CHECK (attempt_number >= 1),
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      INTEGER     NOT NULL CHECK (duration_ms >= 0),
    http_status      INTEGER,
    -- The answer's first bytes, made storable as response_body is.
    response_excerpt TEXT,
    response_excerpt_sanitised BOOLEAN NOT NULL DEFAULT false,
    error            TEXT,
    -- The dispatcher replica (its pod's name) that made the attempt.
    replica          TEXT        NOT NULL
) PARTITION BY RANGE (event_time);
CREATE TABLE webhook_delivery_attempts_default PARTITION OF webhook_delivery_attempts DEFAULT;
SELECT io_create_day_partitions('webhook_delivery_attempts', 'event_time',
    io_first_day(NULL), (now() AT TIME ZONE 'UTC')::date + 7);
CREATE INDEX webhook_delivery_attempts_delivery_idx ON webhook_delivery_attempts (delivery_id, event_time, started_at);

-- +goose Down
DROP TABLE webhook_delivery_attempts;
