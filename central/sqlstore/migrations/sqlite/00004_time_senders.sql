-- The audit log's searches by time read a tenant's messages newest first,
-- in the log's order, from this index; it holds the senders too, so that a
-- search by sender substring over a time range reads the index alone and
-- fetches only the page it returns.

-- +goose Up
CREATE INDEX messages_tenant_time_senders ON messages (tenant, received_at, sensor_id, message_id, mail_from, header_from);
DROP INDEX messages_tenant_time;

-- +goose Down
CREATE INDEX messages_tenant_time ON messages (tenant, received_at);
DROP INDEX messages_tenant_time_senders;
