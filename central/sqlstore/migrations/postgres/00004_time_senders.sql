-- The audit log's searches by time read a tenant's messages newest first,
-- in the log's order, from this index; it includes the senders too, so
-- that a search by sender substring over a time range can be an index-only
-- scan that fetches only the page it returns.

-- +goose Up
CREATE INDEX messages_tenant_time_senders ON messages (tenant, received_at, sensor_id, message_id) INCLUDE (mail_from, header_from);
DROP INDEX messages_tenant_time;

-- +goose Down
CREATE INDEX messages_tenant_time ON messages (tenant, received_at);
DROP INDEX messages_tenant_time_senders;
