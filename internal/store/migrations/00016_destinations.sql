-- A subscription may deliver to a queue (SQS, STOMP) instead of an HTTP
-- endpoint: destination holds its non-sensitive settings as JSON, with
-- its kind; NULL is the HTTP endpoint at target_url, as before. For a
-- queue, target_url holds a display form of it (the queue URL, or
-- stomp://host:port/destination). Credentials are in Vault, never here.

-- +goose Up
ALTER TABLE webhook_subscriptions ADD COLUMN destination JSONB;

-- +goose Down
ALTER TABLE webhook_subscriptions DROP COLUMN destination;
