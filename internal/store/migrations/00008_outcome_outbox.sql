-- Outcome notices (webhook.delivered, webhook.dead_lettered) are written in
-- the transaction that records the outcome and kept here until Kafka takes
-- them: a broker outage or a crash delays a notice, never loses it. The
-- writer claims its own rows and publishes them at once; a relay takes over
-- rows whose claim lapsed. Published rows are deleted, so the table holds
-- only what is still to send.

-- +goose Up
CREATE TABLE outcome_outbox (
    outcome_id    UUID PRIMARY KEY,
    topic         TEXT        NOT NULL,
    message_key   BYTEA       NOT NULL,
    message_value BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until TIMESTAMPTZ,
    attempts      INTEGER     NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX outcome_outbox_created_idx ON outcome_outbox (created_at);

-- +goose Down
DROP TABLE outcome_outbox;
