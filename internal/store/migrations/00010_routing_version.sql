-- The dispatchers' routing index reloads when this counter moves. Every
-- change to a subscription or connector row bumps it in the changing
-- transaction; the row lock orders the bumps as their transactions commit,
-- so a reader that sees an unchanged counter has missed no committed
-- change (a max(updated_at) could: now() is when a transaction began, not
-- when it committed).

-- +goose Up
CREATE TABLE routing_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    version   BIGINT  NOT NULL
);
INSERT INTO routing_version (version) VALUES (1);

-- +goose StatementBegin
CREATE FUNCTION bump_routing_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE routing_version SET version = version + 1;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Per row: an upsert that changes nothing fires no row trigger.
CREATE TRIGGER webhook_subscriptions_routing AFTER INSERT OR UPDATE OR DELETE ON webhook_subscriptions
    FOR EACH ROW EXECUTE FUNCTION bump_routing_version();
CREATE TRIGGER connector_configs_routing AFTER INSERT OR UPDATE OR DELETE ON connector_configs
    FOR EACH ROW EXECUTE FUNCTION bump_routing_version();

-- +goose Down
DROP TRIGGER connector_configs_routing ON connector_configs;
DROP TRIGGER webhook_subscriptions_routing ON webhook_subscriptions;
DROP FUNCTION bump_routing_version();
DROP TABLE routing_version;
