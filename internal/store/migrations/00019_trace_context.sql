-- The trace context each delivery's attempts continue (W3C traceparent and
-- tracestate of the event's persist span), kept with the row so that an
-- attempt made by another replica, or after a restart, joins the event's
-- trace. NULL when tracing is off: a null costs a row nothing.

-- +goose Up
ALTER TABLE webhook_deliveries
	ADD COLUMN trace_parent TEXT,
	ADD COLUMN trace_state TEXT;
ALTER TABLE connector_deliveries
	ADD COLUMN trace_parent TEXT,
	ADD COLUMN trace_state TEXT;

-- +goose Down
ALTER TABLE webhook_deliveries
	DROP COLUMN trace_parent,
	DROP COLUMN trace_state;
ALTER TABLE connector_deliveries
	DROP COLUMN trace_parent,
	DROP COLUMN trace_state;
