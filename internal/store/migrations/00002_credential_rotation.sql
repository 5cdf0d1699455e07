-- Credential rotation with a grace period, revocation kept for audit, and a
-- notification on every change that affects validation, so each credentials
-- API replica drops its cached copy within a second.

-- +goose Up
ALTER TABLE api_credentials
    ADD COLUMN previous_hashed_secret TEXT,
    ADD COLUMN previous_expires_at    TIMESTAMPTZ,
    ADD COLUMN rotation_request       TEXT NOT NULL DEFAULT '',
    ADD COLUMN issued_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN revoked_at             TIMESTAMPTZ;

-- +goose StatementBegin
CREATE FUNCTION api_credentials_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('api_credentials_changed', COALESCE(NEW.client_id, OLD.client_id));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

-- Not on last_used_at: the write-behind of usage must not flush every cache.
CREATE TRIGGER api_credentials_changed
    AFTER UPDATE OF store_id, type, hashed_secret, previous_hashed_secret, previous_expires_at,
                    scopes, is_active, expires_at, revoked_at
    ON api_credentials FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION api_credentials_notify();
-- Inserts too: a replica may hold "unknown client id" for a credential just issued.
CREATE TRIGGER api_credentials_inserted_or_deleted
    AFTER INSERT OR DELETE ON api_credentials FOR EACH ROW EXECUTE FUNCTION api_credentials_notify();

-- +goose Down
DROP TRIGGER api_credentials_inserted_or_deleted ON api_credentials;
DROP TRIGGER api_credentials_changed ON api_credentials;
DROP FUNCTION api_credentials_notify();
ALTER TABLE api_credentials
    DROP COLUMN revoked_at,
    DROP COLUMN issued_at,
    DROP COLUMN rotation_request,
    DROP COLUMN previous_expires_at,
    DROP COLUMN previous_hashed_secret;
