-- The platform's five integration tables. Column names and meanings follow the
-- platform's specification; later migrations may add, never drop.

-- +goose Up
CREATE TABLE webhook_subscriptions (
    subscription_id UUID PRIMARY KEY,
    store_id        TEXT        NOT NULL,
    name            TEXT        NOT NULL,
    target_url      TEXT        NOT NULL,
    events          TEXT[]      NOT NULL,
    is_active       BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The dispatcher's routing index loads active subscriptions per store.
CREATE INDEX webhook_subscriptions_store_active_idx ON webhook_subscriptions (store_id) WHERE is_active;

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
    CONSTRAINT webhook_deliveries_subscription_event_key UNIQUE (subscription_id, event_id)
);
-- The retry scheduler's due-scan. Partial, so it stays the size of the work
-- still to do however large the delivered history grows.
CREATE INDEX webhook_deliveries_status_next_retry_idx ON webhook_deliveries (status, next_retry_at)
    WHERE status IN ('PENDING', 'FAILED');

CREATE TABLE api_credentials (
    credential_id UUID PRIMARY KEY,
    store_id      TEXT        NOT NULL,
    name          TEXT        NOT NULL,
    type          TEXT        NOT NULL CHECK (type IN ('API_KEY', 'OAUTH_CLIENT')),
    client_id     TEXT        NOT NULL,
    hashed_secret TEXT        NOT NULL,
    scopes        TEXT[]      NOT NULL,
    is_active     BOOLEAN     NOT NULL DEFAULT TRUE,
    last_used_at  TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    created_by    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT api_credentials_client_id_key UNIQUE (client_id)
);
CREATE INDEX api_credentials_store_idx ON api_credentials (store_id);

CREATE TABLE connector_configs (
    config_id           UUID PRIMARY KEY,
    store_id            TEXT        NOT NULL,
    connector_type      TEXT        NOT NULL,
    display_name        TEXT        NOT NULL,
    is_active           BOOLEAN     NOT NULL DEFAULT TRUE,
    event_subscriptions TEXT[]      NOT NULL DEFAULT '{}',
    settings            JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX connector_configs_store_active_idx ON connector_configs (store_id) WHERE is_active;

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
CREATE INDEX connector_sync_log_config_started_idx ON connector_sync_log (config_id, started_at DESC);

-- +goose Down
DROP TABLE connector_sync_log;
DROP TABLE connector_configs;
DROP TABLE api_credentials;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_subscriptions;
