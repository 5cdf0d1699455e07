-- A short fingerprint of each credential secret (32 bits of a SHA-256 of
-- the client id and the ~256-bit generated secret), so the credentials API
-- can refuse a wrong guess without running bcrypt and without spending the
-- client's bcrypt budget: the real holder always matches, a random guess
-- almost never does. bcrypt stays the record; 32 bits of a 256-bit random
-- secret leave 224 unknown, far beyond any search.
--
-- Filled by the credentials API on a secret's first successful bcrypt
-- (rows older than this migration, and secrets issued since), moved with the
-- secret on rotation. Not in the change trigger: a backfill changes nothing
-- a cached entry decides on, so it must not flush every replica's cache.

-- +goose Up
ALTER TABLE api_credentials
    ADD COLUMN secret_fingerprint          TEXT,
    ADD COLUMN previous_secret_fingerprint TEXT;

-- +goose Down
ALTER TABLE api_credentials
    DROP COLUMN previous_secret_fingerprint,
    DROP COLUMN secret_fingerprint;
