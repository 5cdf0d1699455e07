-- Limits that hold across dispatcher replicas. A subscription's rate is a
-- token bucket here that replicas take batches of tokens from. Each
-- replica that has traffic for a subscription leases a share of its
-- concurrency; the shares of live leases never add up to more than the
-- limit, and a lease a replica stops renewing (it died) expires.
-- An endpoint's breaker opened by one replica is recorded here, with its
-- reopen time, so that every replica honours it; after that time one
-- replica at a time holds the half-open probe.

-- +goose Up
-- A replica's heartbeat: its leases live while it does, so the lease rows
-- themselves are written only when a share changes.
CREATE TABLE limit_replicas (
    replica TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE endpoint_limit_leases (
    subscription_id UUID NOT NULL,
    replica TEXT NOT NULL REFERENCES limit_replicas ON DELETE CASCADE,
    slots INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, replica)
);

-- granted: what the last take got (computed in the same statement).
CREATE TABLE endpoint_rate_buckets (
    subscription_id UUID PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    granted INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE endpoint_breakers (
    subscription_id UUID PRIMARY KEY,
    open_until TIMESTAMPTZ NOT NULL,
    probe_by TEXT,
    probe_until TIMESTAMPTZ
);

-- +goose Down
DROP TABLE endpoint_breakers;
DROP TABLE endpoint_rate_buckets;
DROP TABLE endpoint_limit_leases;
DROP TABLE limit_replicas;
