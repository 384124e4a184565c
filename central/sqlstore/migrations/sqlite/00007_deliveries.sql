-- A gateway sensor's delivery attempts, in the message audit log: a row a
-- recipient an attempt, with the attempt's next hop (the delivery queue's
-- destination: a domain, route:DOMAIN, relay), the host it reached, the
-- session's TLS, and the reply and state it left the recipient in.
-- started and next_attempt are Unix microseconds, took microseconds. The
-- primary key makes a report the central gets twice one set of rows, and
-- reads one message's attempts.

-- +goose Up
CREATE TABLE deliveries (
    tenant       TEXT    NOT NULL,
    sensor_id    TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    started      INTEGER NOT NULL,
    next_hop     TEXT    NOT NULL,
    rcpt         TEXT    NOT NULL,
    host         TEXT    NOT NULL DEFAULT '',
    tls          TEXT    NOT NULL DEFAULT '',
    took         INTEGER NOT NULL DEFAULT 0,
    sender       TEXT    NOT NULL DEFAULT '',
    direction    TEXT    NOT NULL DEFAULT '',
    state        TEXT    NOT NULL,
    code         INTEGER NOT NULL DEFAULT 0,
    enhanced     TEXT    NOT NULL DEFAULT '',
    text         TEXT    NOT NULL DEFAULT '',
    next_attempt INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, sensor_id, message_id, started, next_hop, rcpt)
);
-- The audit log reads a tenant's attempts newest first, in its order (time,
-- then sensor, message and next hop), from this index, which holds the
-- sender for a search by sender; every tenant's from the next, which the
-- retention reads too; a recipient's from the last, as it does messages.
CREATE INDEX deliveries_tenant_time ON deliveries (tenant, started, sensor_id, message_id, next_hop, sender);
CREATE INDEX deliveries_time ON deliveries (started, tenant, sensor_id, message_id, next_hop);
CREATE INDEX deliveries_rcpt_tenant ON deliveries (rcpt, tenant, started, sensor_id, message_id, next_hop);

-- +goose Down
DROP TABLE deliveries;
