-- When the dispatcher cannot reach a subscription's queue broker, or finds
-- the destination's credentials missing from Vault, deliveries wait with no
-- attempt spent. It says since when (and why) here, so that the status shows
-- it and the wait is bounded: past --destination-unreachable-max-age the
-- waiting deliveries are dead-lettered. Reaching the destination clears it.

-- +goose Up
ALTER TABLE webhook_subscription_stats
	ADD COLUMN destination_down_since TIMESTAMPTZ,
	ADD COLUMN destination_down_reason TEXT;

-- +goose Down
ALTER TABLE webhook_subscription_stats
	DROP COLUMN destination_down_since,
	DROP COLUMN destination_down_reason;
