-- Connector work: events queued per connector (retried apart from webhook
-- deliveries), poll scheduling with a lease so one replica polls a config
-- at a time, inbound provider webhooks stored once, and per-connector counts.

-- +goose Up
ALTER TABLE connector_configs
    ADD COLUMN poll_interval_seconds INTEGER NOT NULL DEFAULT 300 CHECK (poll_interval_seconds > 0);

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
    UNIQUE (config_id, event_id)
);
CREATE INDEX connector_deliveries_due_idx ON connector_deliveries (next_retry_at) WHERE status IN ('PENDING', 'FAILED');
CREATE INDEX connector_deliveries_queued_idx ON connector_deliveries (config_id) WHERE status IN ('PENDING', 'FAILED');

CREATE TABLE connector_poll_state (
    config_id            UUID PRIMARY KEY REFERENCES connector_configs (config_id),
    poll_cursor          TEXT        NOT NULL DEFAULT '',
    next_poll_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until        TIMESTAMPTZ,
    consecutive_failures INTEGER     NOT NULL DEFAULT 0
);

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
    UNIQUE (config_id, provider_event_id)
);
CREATE INDEX connector_inbound_events_unpublished_idx ON connector_inbound_events (next_attempt_at) WHERE status = 'RECEIVED';

CREATE TABLE connector_stats (
    config_id          UUID PRIMARY KEY REFERENCES connector_configs (config_id),
    inbound_accepted   BIGINT      NOT NULL DEFAULT 0,
    inbound_duplicates BIGINT      NOT NULL DEFAULT 0,
    inbound_rejected   BIGINT      NOT NULL DEFAULT 0,
    last_rejected_at   TIMESTAMPTZ,
    last_reject_reason TEXT,
    outbound_delivered     BIGINT NOT NULL DEFAULT 0,
    outbound_failed        BIGINT NOT NULL DEFAULT 0,
    outbound_dead_lettered BIGINT NOT NULL DEFAULT 0,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE connector_stats;
DROP TABLE connector_inbound_events;
DROP TABLE connector_poll_state;
DROP TABLE connector_deliveries;
ALTER TABLE connector_configs DROP COLUMN poll_interval_seconds;
