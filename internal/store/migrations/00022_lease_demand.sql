-- Concurrency shares weighted by demand: each replica records, with its
-- lease of a subscription's slots, how much work it had for the endpoint
-- at its last sync (attempts in flight and waiting for a slot, at most),
-- so that the slots go where the work is instead of in equal parts to
-- every replica with traffic. A row written by a replica that predates
-- this counts as some demand.

-- +goose Up
ALTER TABLE endpoint_limit_leases ADD COLUMN demand INTEGER NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE endpoint_limit_leases DROP COLUMN demand;
