-- Message records (the exactly-once keys of uploads) and alerts.
-- Times are Unix microseconds; record and alert hold the protobuf message.

-- +goose Up
CREATE TABLE messages (
    tenant      TEXT    NOT NULL,
    sensor_id   TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    -- A POP3 message is also known by its mailbox and UIDL.
    mailbox     TEXT,
    uidl        TEXT,
    recorded_at BIGINT  NOT NULL,
    verdict     TEXT    NOT NULL,
    alert_id    TEXT,
    record      BYTEA   NOT NULL,
    PRIMARY KEY (tenant, sensor_id, message_id)
);
CREATE UNIQUE INDEX messages_pop3 ON messages (tenant, mailbox, uidl) WHERE uidl IS NOT NULL;
CREATE INDEX messages_recorded_at ON messages (recorded_at);

CREATE TABLE alerts (
    tenant     TEXT    NOT NULL,
    -- Alert ids sort by time (see store.AlertID).
    id         TEXT    NOT NULL,
    -- seq numbers a tenant's alerts in commit order, without gaps: the SIEM
    -- export's cursor.
    seq        BIGINT  NOT NULL,
    severity   INTEGER NOT NULL,
    sensor_id  TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    -- search is the lower-cased text a query's q looks in.
    search     TEXT    NOT NULL,
    alert      BYTEA   NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX alerts_seq ON alerts (tenant, seq);
CREATE INDEX alerts_id ON alerts (id, tenant);

CREATE TABLE alert_seq (
    tenant TEXT    PRIMARY KEY,
    seq    BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE alert_seq;
DROP TABLE alerts;
DROP TABLE messages;
