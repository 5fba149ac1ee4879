-- The audit log API filters the log by event type (GET /v1/events?type=…), in position order.
CREATE INDEX events_by_type ON events (event_type, position);
