-- History is partitioned by day (declarative RANGE partitioning), so that
-- retention drops a day's partition instead of deleting rows, and a table's
-- hot indexes are those of a few recent days however long history is kept.
--
-- The partition key of a delivery is its event's own time (event_time: the
-- event's time field, else the Kafka message's timestamp), never the time
-- of the insert: a redelivered Kafka message or a re-sent event has the same
-- key, so the unique (subscription_id, event_id, event_time) stays as exact
-- a dedup as (subscription_id, event_id) was. A time no daily partition
-- covers (hostile, far past or future) lands in the table's DEFAULT
-- partition: it is kept and deduplicated like any other, never refused.
-- Sync runs are keyed by started_at and provider webhooks by received_at
-- (the store's own clock); provider webhooks are deduplicated across days
-- under an advisory lock (see InsertInboundEvent).
--
-- Event data is stored once per event (event_payloads, content-addressed by
-- the SHA-256 of the bytes produced and partitioned like the deliveries),
-- not once per delivery: fan-out to N subscribers no longer multiplies it.
-- webhook_deliveries.event_payload stays, NULL for rows written since.
--
-- Every row is kept: existing rows are keyed by their created_at (their
-- event's time was not recorded) and copied into partitions covering them.

-- +goose Up

-- io_create_day_partition makes parent's partition for day (UTC), named
-- <parent>_pYYYYMMDD, moving into it any rows of that day the DEFAULT
-- partition holds (which would otherwise forbid it). It returns false when
-- the partition existed. The retention job calls it too.
-- +goose StatementBegin
CREATE FUNCTION io_create_day_partition(parent TEXT, key TEXT, day DATE) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
DECLARE
    part TEXT := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
    lo TIMESTAMPTZ := day::timestamp AT TIME ZONE 'UTC';
    hi TIMESTAMPTZ := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
        parent || '_default', key, key, part) USING lo, hi;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    RETURN true;
END
$$;
-- +goose StatementEnd

-- io_create_day_partitions covers [first, last] with daily partitions.
-- +goose StatementBegin
CREATE FUNCTION io_create_day_partitions(parent TEXT, key TEXT, first DATE, last DATE) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    FOR d IN 0 .. (last - first) LOOP
        PERFORM io_create_day_partition(parent, key, first + d);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- The first day to cover: that of the oldest row, at most yesterday.
-- +goose StatementBegin
CREATE FUNCTION io_first_day(oldest TIMESTAMPTZ) RETURNS DATE
LANGUAGE sql STABLE AS $$
    SELECT least(COALESCE((oldest AT TIME ZONE 'UTC')::date, 'infinity'::date), (now() AT TIME ZONE 'UTC')::date - 1)
$$;
-- +goose StatementEnd

CREATE TABLE event_payloads (
    payload_digest    BYTEA       NOT NULL,
    event_time        TIMESTAMPTZ NOT NULL,
    raw_payload       BYTEA       NOT NULL,
    event_payload     JSONB,
    payload_sanitised BOOLEAN     NOT NULL DEFAULT false,
    PRIMARY KEY (payload_digest, event_time)
) PARTITION BY RANGE (event_time);
CREATE TABLE event_payloads_default PARTITION OF event_payloads DEFAULT;

-- Each payload the deliveries hold, once, keyed by the time their rows get.
ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_unpartitioned;
ALTER TABLE connector_deliveries RENAME TO connector_deliveries_unpartitioned;
SELECT io_create_day_partitions('event_payloads', 'event_time',
    io_first_day(least((SELECT min(created_at) FROM webhook_deliveries_unpartitioned), (SELECT min(created_at) FROM connector_deliveries_unpartitioned))),
    (now() AT TIME ZONE 'UTC')::date + 7);
INSERT INTO event_payloads (payload_digest, event_time, raw_payload, event_payload, payload_sanitised)
SELECT DISTINCT ON (digest, created_at) digest, created_at, raw, event_payload, payload_sanitised
FROM (SELECT sha256(COALESCE(raw_payload, convert_to(event_payload::text, 'UTF8'))) AS digest,
             COALESCE(raw_payload, convert_to(event_payload::text, 'UTF8')) AS raw, created_at, event_payload, payload_sanitised
      FROM webhook_deliveries_unpartitioned
      UNION ALL
      SELECT sha256(COALESCE(raw_payload, convert_to(event_payload::text, 'UTF8'))),
             COALESCE(raw_payload, convert_to(event_payload::text, 'UTF8')), created_at, event_payload, payload_sanitised
      FROM connector_deliveries_unpartitioned) o
ORDER BY digest, created_at;

-- webhook_deliveries
CREATE TABLE webhook_deliveries (
    delivery_id     UUID        NOT NULL,
    subscription_id UUID        NOT NULL,
    store_id        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    event_id        UUID        NOT NULL,
    event_payload   JSONB,
    http_status     INTEGER,
    response_body   TEXT,
    attempt_number  INTEGER     NOT NULL DEFAULT 0 CHECK (attempt_number >= 0),
    next_retry_at   TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    status          TEXT        NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD_LETTERED')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until   TIMESTAMPTZ,
    last_error      TEXT,
    response_body_sanitised BOOLEAN NOT NULL DEFAULT false,
    claim_token     UUID,
    -- A row written without its event's time (by hand) gets one fixed
    -- instant, so that (subscription_id, event_id) stays unique among them.
    event_time      TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01 00:00:00+00',
    payload_digest  BYTEA
) PARTITION BY RANGE (event_time);
CREATE TABLE webhook_deliveries_default PARTITION OF webhook_deliveries DEFAULT;
SELECT io_create_day_partitions('webhook_deliveries', 'event_time',
    io_first_day((SELECT min(created_at) FROM webhook_deliveries_unpartitioned)), (now() AT TIME ZONE 'UTC')::date + 7);
INSERT INTO webhook_deliveries (delivery_id, subscription_id, store_id, event_type, event_id, http_status, response_body,
    attempt_number, next_retry_at, delivered_at, status, created_at, updated_at, claimed_until, last_error,
    response_body_sanitised, claim_token, event_time, payload_digest)
SELECT delivery_id, subscription_id, store_id, event_type, event_id, http_status, response_body,
    attempt_number, next_retry_at, delivered_at, status, created_at, updated_at, claimed_until, last_error,
    response_body_sanitised, claim_token, created_at, sha256(COALESCE(raw_payload, convert_to(event_payload::text, 'UTF8')))
FROM webhook_deliveries_unpartitioned;
DROP TABLE webhook_deliveries_unpartitioned;
ALTER TABLE webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (delivery_id, event_time),
    ADD CONSTRAINT webhook_deliveries_subscription_event_key UNIQUE (subscription_id, event_id, event_time),
    ADD CONSTRAINT webhook_deliveries_subscription_id_fkey FOREIGN KEY (subscription_id) REFERENCES webhook_subscriptions (subscription_id);
CREATE INDEX webhook_deliveries_status_next_retry_idx ON webhook_deliveries (status, next_retry_at)
    WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX webhook_deliveries_open_by_subscription_idx ON webhook_deliveries (subscription_id)
    WHERE status IN ('PENDING', 'FAILED');

-- connector_deliveries
CREATE TABLE connector_deliveries (
    delivery_id    UUID        NOT NULL,
    config_id      UUID        NOT NULL,
    store_id       TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    event_id       UUID        NOT NULL,
    event_payload  JSONB,
    status         TEXT        NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD_LETTERED')),
    attempt_number INTEGER     NOT NULL DEFAULT 0,
    next_retry_at  TIMESTAMPTZ,
    claimed_until  TIMESTAMPTZ,
    last_error     TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at   TIMESTAMPTZ,
    claim_token    UUID,
    entity_key     TEXT,
    seq            BIGINT GENERATED BY DEFAULT AS IDENTITY,
    event_time     TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01 00:00:00+00',
    payload_digest BYTEA
) PARTITION BY RANGE (event_time);
CREATE TABLE connector_deliveries_default PARTITION OF connector_deliveries DEFAULT;
SELECT io_create_day_partitions('connector_deliveries', 'event_time',
    io_first_day((SELECT min(created_at) FROM connector_deliveries_unpartitioned)), (now() AT TIME ZONE 'UTC')::date + 7);
INSERT INTO connector_deliveries (delivery_id, config_id, store_id, event_type, event_id, status, attempt_number,
    next_retry_at, claimed_until, last_error, created_at, updated_at, delivered_at, claim_token, entity_key, seq,
    event_time, payload_digest)
SELECT delivery_id, config_id, store_id, event_type, event_id, status, attempt_number,
    next_retry_at, claimed_until, last_error, created_at, updated_at, delivered_at, claim_token, entity_key, seq,
    created_at, sha256(COALESCE(raw_payload, convert_to(event_payload::text, 'UTF8')))
FROM connector_deliveries_unpartitioned;
SELECT setval(pg_get_serial_sequence('connector_deliveries', 'seq'), COALESCE((SELECT max(seq) FROM connector_deliveries_unpartitioned), 0) + 1, false);
DROP TABLE connector_deliveries_unpartitioned;
ALTER TABLE connector_deliveries
    ADD CONSTRAINT connector_deliveries_pkey PRIMARY KEY (delivery_id, event_time),
    ADD CONSTRAINT connector_deliveries_config_id_event_id_key UNIQUE (config_id, event_id, event_time),
    ADD CONSTRAINT connector_deliveries_config_id_fkey FOREIGN KEY (config_id) REFERENCES connector_configs (config_id);
CREATE INDEX connector_deliveries_due_idx ON connector_deliveries (next_retry_at) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_queued_idx ON connector_deliveries (config_id) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_entity_idx ON connector_deliveries (config_id, entity_key, seq)
    WHERE status IN ('PENDING', 'FAILED') AND entity_key IS NOT NULL;

-- connector_sync_log
ALTER TABLE connector_sync_log RENAME TO connector_sync_log_unpartitioned;
CREATE TABLE connector_sync_log (
    sync_id       BIGINT GENERATED ALWAYS AS IDENTITY,
    config_id     UUID        NOT NULL,
    direction     TEXT        NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    entity_type   TEXT        NOT NULL,
    record_count  INTEGER     NOT NULL DEFAULT 0 CHECK (record_count >= 0),
    status        TEXT        NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED')),
    error_summary TEXT,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
) PARTITION BY RANGE (started_at);
CREATE TABLE connector_sync_log_default PARTITION OF connector_sync_log DEFAULT;
SELECT io_create_day_partitions('connector_sync_log', 'started_at',
    io_first_day((SELECT min(started_at) FROM connector_sync_log_unpartitioned)), (now() AT TIME ZONE 'UTC')::date + 7);
INSERT INTO connector_sync_log (sync_id, config_id, direction, entity_type, record_count, status, error_summary, started_at, finished_at)
OVERRIDING SYSTEM VALUE
SELECT sync_id, config_id, direction, entity_type, record_count, status, error_summary, started_at, finished_at
FROM connector_sync_log_unpartitioned;
SELECT setval(pg_get_serial_sequence('connector_sync_log', 'sync_id'), COALESCE((SELECT max(sync_id) FROM connector_sync_log_unpartitioned), 0) + 1, false);
DROP TABLE connector_sync_log_unpartitioned;
ALTER TABLE connector_sync_log
    ADD CONSTRAINT connector_sync_log_pkey PRIMARY KEY (sync_id, started_at),
    ADD CONSTRAINT connector_sync_log_config_id_fkey FOREIGN KEY (config_id) REFERENCES connector_configs (config_id);
CREATE INDEX connector_sync_log_config_started_idx ON connector_sync_log (config_id, started_at DESC);
-- Runs still open, for the retention job to keep their day.
CREATE INDEX connector_sync_log_running_idx ON connector_sync_log (config_id) WHERE status = 'RUNNING';

-- connector_inbound_events
ALTER TABLE connector_inbound_events RENAME TO connector_inbound_events_unpartitioned;
CREATE TABLE connector_inbound_events (
    event_id          UUID        NOT NULL,
    config_id         UUID        NOT NULL,
    provider_event_id TEXT        NOT NULL,
    event_type        TEXT        NOT NULL,
    store_id          TEXT        NOT NULL,
    payload           JSONB       NOT NULL,
    status            TEXT        NOT NULL CHECK (status IN ('RECEIVED', 'PUBLISHED')),
    attempts          INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until     TIMESTAMPTZ,
    last_error        TEXT,
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at      TIMESTAMPTZ,
    raw_payload       BYTEA,
    payload_sanitised BOOLEAN     NOT NULL DEFAULT false
) PARTITION BY RANGE (received_at);
CREATE TABLE connector_inbound_events_default PARTITION OF connector_inbound_events DEFAULT;
SELECT io_create_day_partitions('connector_inbound_events', 'received_at',
    io_first_day((SELECT min(received_at) FROM connector_inbound_events_unpartitioned)), (now() AT TIME ZONE 'UTC')::date + 7);
INSERT INTO connector_inbound_events SELECT event_id, config_id, provider_event_id, event_type, store_id, payload, status,
    attempts, next_attempt_at, claimed_until, last_error, received_at, published_at, raw_payload, payload_sanitised
FROM connector_inbound_events_unpartitioned;
DROP TABLE connector_inbound_events_unpartitioned;
ALTER TABLE connector_inbound_events
    ADD CONSTRAINT connector_inbound_events_pkey PRIMARY KEY (event_id, received_at),
    -- Unique per day; across days InsertInboundEvent checks under a lock.
    ADD CONSTRAINT connector_inbound_events_config_id_provider_event_id_key UNIQUE (config_id, provider_event_id, received_at),
    ADD CONSTRAINT connector_inbound_events_config_id_fkey FOREIGN KEY (config_id) REFERENCES connector_configs (config_id);
CREATE INDEX connector_inbound_events_unpublished_idx ON connector_inbound_events (next_attempt_at) WHERE status = 'RECEIVED';

-- +goose Down
-- Back to plain tables, every row kept, each delivery with its payload again.
ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_partitioned;
CREATE TABLE webhook_deliveries (
    delivery_id     UUID PRIMARY KEY,
    subscription_id UUID        NOT NULL REFERENCES webhook_subscriptions (subscription_id),
    store_id        TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    event_id        UUID        NOT NULL,
    event_payload   JSONB       NOT NULL,
    http_status     INTEGER,
    response_body   TEXT,
    attempt_number  INTEGER     NOT NULL DEFAULT 0 CHECK (attempt_number >= 0),
    next_retry_at   TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    status          TEXT        NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD_LETTERED')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until   TIMESTAMPTZ,
    last_error      TEXT,
    raw_payload             BYTEA,
    payload_sanitised       BOOLEAN NOT NULL DEFAULT false,
    response_body_sanitised BOOLEAN NOT NULL DEFAULT false,
    claim_token     UUID
);
-- A (subscription, event) kept under two event times keeps its newest.
INSERT INTO webhook_deliveries
SELECT DISTINCT ON (d.subscription_id, d.event_id) d.delivery_id, d.subscription_id, d.store_id, d.event_type, d.event_id,
    COALESCE(p.event_payload, d.event_payload, 'null'::jsonb), d.http_status, d.response_body, d.attempt_number, d.next_retry_at,
    d.delivered_at, d.status, d.created_at, d.updated_at, d.claimed_until, d.last_error, p.raw_payload,
    COALESCE(p.payload_sanitised, false), d.response_body_sanitised, d.claim_token
FROM webhook_deliveries_partitioned d
LEFT JOIN event_payloads p ON p.payload_digest = d.payload_digest AND p.event_time = d.event_time
ORDER BY d.subscription_id, d.event_id, d.updated_at DESC;
DROP TABLE webhook_deliveries_partitioned;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_subscription_event_key UNIQUE (subscription_id, event_id);
CREATE INDEX webhook_deliveries_status_next_retry_idx ON webhook_deliveries (status, next_retry_at)
    WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX webhook_deliveries_open_by_subscription_idx ON webhook_deliveries (subscription_id)
    WHERE status IN ('PENDING', 'FAILED');

ALTER TABLE connector_deliveries RENAME TO connector_deliveries_partitioned;
CREATE TABLE connector_deliveries (
    delivery_id    UUID PRIMARY KEY,
    config_id      UUID        NOT NULL REFERENCES connector_configs (config_id),
    store_id       TEXT        NOT NULL,
    event_type     TEXT        NOT NULL,
    event_id       UUID        NOT NULL,
    event_payload  JSONB       NOT NULL,
    status         TEXT        NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'DEAD_LETTERED')),
    attempt_number INTEGER     NOT NULL DEFAULT 0,
    next_retry_at  TIMESTAMPTZ,
    claimed_until  TIMESTAMPTZ,
    last_error     TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at   TIMESTAMPTZ,
    raw_payload       BYTEA,
    payload_sanitised BOOLEAN NOT NULL DEFAULT false,
    claim_token    UUID,
    entity_key     TEXT,
    seq            BIGINT GENERATED BY DEFAULT AS IDENTITY
);
INSERT INTO connector_deliveries
SELECT DISTINCT ON (d.config_id, d.event_id) d.delivery_id, d.config_id, d.store_id, d.event_type, d.event_id,
    COALESCE(p.event_payload, d.event_payload, 'null'::jsonb), d.status, d.attempt_number, d.next_retry_at, d.claimed_until,
    d.last_error, d.created_at, d.updated_at, d.delivered_at, p.raw_payload, COALESCE(p.payload_sanitised, false),
    d.claim_token, d.entity_key, d.seq
FROM connector_deliveries_partitioned d
LEFT JOIN event_payloads p ON p.payload_digest = d.payload_digest AND p.event_time = d.event_time
ORDER BY d.config_id, d.event_id, d.updated_at DESC;
SELECT setval(pg_get_serial_sequence('connector_deliveries', 'seq'), COALESCE((SELECT max(seq) FROM connector_deliveries), 0) + 1, false);
DROP TABLE connector_deliveries_partitioned;
DROP TABLE event_payloads;
ALTER TABLE connector_deliveries ADD CONSTRAINT connector_deliveries_config_id_event_id_key UNIQUE (config_id, event_id);
CREATE INDEX connector_deliveries_due_idx ON connector_deliveries (next_retry_at) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_queued_idx ON connector_deliveries (config_id) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_entity_idx ON connector_deliveries (config_id, entity_key, seq)
    WHERE status IN ('PENDING', 'FAILED') AND entity_key IS NOT NULL;

ALTER TABLE connector_sync_log RENAME TO connector_sync_log_partitioned;
CREATE TABLE connector_sync_log (
    sync_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    config_id     UUID        NOT NULL REFERENCES connector_configs (config_id),
    direction     TEXT        NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    entity_type   TEXT        NOT NULL,
    record_count  INTEGER     NOT NULL DEFAULT 0 CHECK (record_count >= 0),
    status        TEXT        NOT NULL CHECK (status IN ('RUNNING', 'SUCCEEDED', 'PARTIAL', 'FAILED')),
    error_summary TEXT,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
);
INSERT INTO connector_sync_log OVERRIDING SYSTEM VALUE SELECT * FROM connector_sync_log_partitioned;
SELECT setval(pg_get_serial_sequence('connector_sync_log', 'sync_id'), COALESCE((SELECT max(sync_id) FROM connector_sync_log), 0) + 1, false);
DROP TABLE connector_sync_log_partitioned;
CREATE INDEX connector_sync_log_config_started_idx ON connector_sync_log (config_id, started_at DESC);

ALTER TABLE connector_inbound_events RENAME TO connector_inbound_events_partitioned;
CREATE TABLE connector_inbound_events (
    event_id          UUID PRIMARY KEY,
    config_id         UUID        NOT NULL REFERENCES connector_configs (config_id),
    provider_event_id TEXT        NOT NULL,
    event_type        TEXT        NOT NULL,
    store_id          TEXT        NOT NULL,
    payload           JSONB       NOT NULL,
    status            TEXT        NOT NULL CHECK (status IN ('RECEIVED', 'PUBLISHED')),
    attempts          INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until     TIMESTAMPTZ,
    last_error        TEXT,
    received_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at      TIMESTAMPTZ,
    raw_payload       BYTEA,
    payload_sanitised BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (config_id, provider_event_id)
);
INSERT INTO connector_inbound_events SELECT * FROM connector_inbound_events_partitioned ON CONFLICT DO NOTHING;
DROP TABLE connector_inbound_events_partitioned;
CREATE INDEX connector_inbound_events_unpublished_idx ON connector_inbound_events (next_attempt_at) WHERE status = 'RECEIVED';

DROP FUNCTION io_first_day(TIMESTAMPTZ);
DROP FUNCTION io_create_day_partitions(TEXT, TEXT, DATE, DATE);
DROP FUNCTION io_create_day_partition(TEXT, TEXT, DATE);
