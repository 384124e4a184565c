-- The recipient indexes lead with the recipient and the tenant, both
-- compared for equality in a tenant's search, so that the rest of each
-- (time, then sensor and key) is the log's order and a search stops after
-- a page: with the tenant after the time, SQLite sorted every match.

-- +goose Up
CREATE INDEX message_rcpts_by_rcpt_tenant ON message_rcpts (rcpt, tenant, received_at, sensor_id, message_id);
DROP INDEX message_rcpts_by_rcpt;
CREATE INDEX refusals_rcpt_tenant ON refusals (rcpt, tenant, last_at, sensor_id, minute, client_ip, reason);
DROP INDEX refusals_rcpt;

-- +goose Down
CREATE INDEX refusals_rcpt ON refusals (rcpt, last_at, tenant, sensor_id, minute, client_ip, reason);
DROP INDEX refusals_rcpt_tenant;
CREATE INDEX message_rcpts_by_rcpt ON message_rcpts (rcpt, received_at, tenant, sensor_id, message_id);
DROP INDEX message_rcpts_by_rcpt_tenant;
