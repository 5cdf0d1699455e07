-- What comes from outside is stored so that Postgres cannot refuse it.
-- Event data is kept as the bytes produced (every attempt sends exactly
-- those); the jsonb column keeps a copy for inspection, sanitised and
-- flagged where jsonb cannot hold the document. Rows from before this
-- migration have no raw bytes: their jsonb is what they are sent from.
-- Kafka messages that cannot be set aside on the poison topic are kept
-- here, and partitions that cannot make progress are recorded so the
-- manager can show it on the resources of the stores they carry.

-- +goose Up
ALTER TABLE webhook_deliveries
    ADD COLUMN raw_payload             BYTEA,
    ADD COLUMN payload_sanitised       BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN response_body_sanitised BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE connector_deliveries
    ADD COLUMN raw_payload       BYTEA,
    ADD COLUMN payload_sanitised BOOLEAN NOT NULL DEFAULT false;

ALTER TABLE connector_inbound_events
    ADD COLUMN raw_payload       BYTEA,
    ADD COLUMN payload_sanitised BOOLEAN NOT NULL DEFAULT false;

-- The jsonb of a document, or NULL where Postgres refuses it (a number
-- beyond numeric's range, nesting deeper than the stack allows). Only the
-- careful retry of a refused batch calls it: each call is a subtransaction.
-- +goose StatementBegin
CREATE FUNCTION io_jsonb_or_null(copy TEXT, raw BYTEA) RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN COALESCE(copy, convert_from(raw, 'UTF8'))::jsonb;
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TABLE poison_messages (
    poison_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic           TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    message_key     BYTEA,
    message_value   BYTEA,
    header_keys     TEXT[]      NOT NULL DEFAULT '{}',
    header_values   BYTEA[]     NOT NULL DEFAULT '{}',
    reason          TEXT        NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (topic, kafka_partition, kafka_offset)
);

CREATE TABLE intake_stalls (
    topic           TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    -- The stores whose events are in the stuck batch; empty when none decoded.
    store_ids       TEXT[]      NOT NULL DEFAULT '{}',
    reason          TEXT        NOT NULL,
    since           TIMESTAMPTZ NOT NULL,
    seen_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);

-- +goose Down
DROP TABLE intake_stalls;
DROP TABLE poison_messages;
DROP FUNCTION io_jsonb_or_null(TEXT, BYTEA);
ALTER TABLE connector_inbound_events DROP COLUMN payload_sanitised, DROP COLUMN raw_payload;
ALTER TABLE connector_deliveries DROP COLUMN payload_sanitised, DROP COLUMN raw_payload;
ALTER TABLE webhook_deliveries DROP COLUMN response_body_sanitised, DROP COLUMN payload_sanitised, DROP COLUMN raw_payload;
