-- The message audit log: what each accepted message's record needs to be
-- searched, its recipients one a row, and the refusals sensors report,
-- counted per sensor, client, reason and minute.

-- +goose Up
ALTER TABLE messages ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN mail_from TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN header_from TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN header_message_id TEXT NOT NULL DEFAULT '';
UPDATE messages SET received_at = recorded_at;
CREATE INDEX messages_tenant_time ON messages (tenant, received_at);
CREATE INDEX messages_time ON messages (received_at);
CREATE INDEX messages_client ON messages (tenant, client_ip, received_at);
CREATE INDEX messages_header_message_id ON messages (tenant, header_message_id);

CREATE TABLE message_rcpts (
    tenant      TEXT    NOT NULL,
    sensor_id   TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    rcpt        TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, sensor_id, message_id, rcpt)
);
CREATE INDEX message_rcpts_rcpt ON message_rcpts (tenant, rcpt, received_at);

CREATE TABLE refusals (
    tenant    TEXT    NOT NULL,
    sensor_id TEXT    NOT NULL,
    -- minute is the start of the minute the refusals fell in, Unix seconds.
    minute    INTEGER NOT NULL,
    client_ip TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    first_at  INTEGER NOT NULL,
    last_at   INTEGER NOT NULL,
    -- What the first refusal of the minute said: its sender, recipient,
    -- and the detail the sensor gave (the TLS alert, the size asked).
    mail_from TEXT    NOT NULL DEFAULT '',
    rcpt      TEXT    NOT NULL DEFAULT '',
    detail    TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, sensor_id, minute, client_ip, reason)
);
CREATE INDEX refusals_tenant_time ON refusals (tenant, last_at);
CREATE INDEX refusals_time ON refusals (last_at);
CREATE INDEX refusals_reason ON refusals (tenant, reason, last_at);
CREATE INDEX refusals_client ON refusals (tenant, client_ip, last_at);

-- +goose Down
DROP TABLE refusals;
DROP TABLE message_rcpts;
DROP INDEX messages_header_message_id;
DROP INDEX messages_client;
DROP INDEX messages_time;
DROP INDEX messages_tenant_time;
ALTER TABLE messages DROP COLUMN header_message_id;
ALTER TABLE messages DROP COLUMN subject;
ALTER TABLE messages DROP COLUMN header_from;
ALTER TABLE messages DROP COLUMN mail_from;
ALTER TABLE messages DROP COLUMN client_ip;
ALTER TABLE messages DROP COLUMN received_at;
