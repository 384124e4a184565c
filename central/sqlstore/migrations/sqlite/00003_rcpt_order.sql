-- The audit log's recipient search reads a recipient's messages newest
-- first straight from this index, in the log's order (time, then tenant,
-- sensor and message id), and stops after a page: the index it replaces
-- led with the tenant and left the ties to a sort of every match.

-- +goose Up
CREATE INDEX message_rcpts_by_rcpt ON message_rcpts (rcpt, received_at, tenant, sensor_id, message_id);
DROP INDEX message_rcpts_rcpt;

-- +goose Down
CREATE INDEX message_rcpts_rcpt ON message_rcpts (tenant, rcpt, received_at);
DROP INDEX message_rcpts_by_rcpt;
