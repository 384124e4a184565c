-- A search by recipient reads the refusals of that recipient newest first,
-- in the log's order, from this index, and stops after a page; without it
-- the search read every refusal of the tenant (a tenth of a large log).

-- +goose Up
CREATE INDEX refusals_rcpt ON refusals (rcpt, last_at, tenant, sensor_id, minute, client_ip, reason);

-- +goose Down
DROP INDEX refusals_rcpt;
