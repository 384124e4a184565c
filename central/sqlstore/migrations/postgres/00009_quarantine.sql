-- The messages gateway sensors hold in their quarantines, as the central
-- knows them: a row a message, inserted with its record when the central
-- told the sensor to quarantine it, its state changed by operators'
-- actions and by the sensor's reports (evicted by the quarantine's
-- bounds; not held, when nothing was left to hold). pending is an action
-- an operator asked for while the sensor was offline ("release",
-- "release_to", "delete"), carried out once it is back. Times are Unix
-- microseconds. quarantine_events is each message's history: what
-- happened, when, and who did it.

-- +goose Up
CREATE TABLE quarantine (
    tenant         TEXT    NOT NULL,
    sensor_id      TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    quarantined_at BIGINT  NOT NULL,
    state          TEXT    NOT NULL,
    sender         TEXT    NOT NULL DEFAULT '',
    rcpts          TEXT    NOT NULL DEFAULT '',
    subject        TEXT    NOT NULL DEFAULT '',
    reason         TEXT    NOT NULL DEFAULT '',
    verdict        TEXT    NOT NULL DEFAULT '',
    direction      TEXT    NOT NULL DEFAULT '',
    size           BIGINT  NOT NULL DEFAULT 0,
    updated_at     BIGINT  NOT NULL,
    pending        TEXT    NOT NULL DEFAULT '',
    pending_to     TEXT    NOT NULL DEFAULT '',
    pending_by     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, sensor_id, message_id)
);
CREATE INDEX quarantine_tenant_time ON quarantine (tenant, quarantined_at, sensor_id, message_id);
CREATE INDEX quarantine_time ON quarantine (quarantined_at, tenant, sensor_id, message_id);
CREATE INDEX quarantine_pending ON quarantine (sensor_id) WHERE pending <> '';

CREATE TABLE quarantine_events (
    tenant     TEXT    NOT NULL,
    sensor_id  TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    at         BIGINT  NOT NULL,
    action     TEXT    NOT NULL,
    actor      TEXT    NOT NULL DEFAULT '',
    detail     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, sensor_id, message_id, at, action)
);
-- The audit log reads the steps newest first, every tenant's or one's.
CREATE INDEX quarantine_events_time ON quarantine_events (at, tenant, sensor_id, message_id, action);
CREATE INDEX quarantine_events_tenant_time ON quarantine_events (tenant, at, sensor_id, message_id, action);

-- +goose Down
DROP TABLE quarantine_events;
DROP TABLE quarantine;
