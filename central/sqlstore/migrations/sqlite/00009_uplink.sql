-- Distributed mode: what a PCN keeps of its SCNs' alerts and message
-- summaries. An SCN's alerts go to the alerts table with its server_id
-- ('' for the PCN's own); uplink_cursors is,
-- per SCN and SCN tenant, the last alert number stored (moved in the
-- transaction that stores the alerts); uplink_servers is, per SCN, the end
-- of the summaries stored and when data last came; message_summaries
-- counts each SCN sensor's messages per minute and verdict. Times are Unix
-- microseconds.

-- +goose Up
ALTER TABLE alerts ADD COLUMN server_id TEXT NOT NULL DEFAULT '';
-- Unique: an SCN's alert is stored once (its tenant on the PCN is the
-- SCN's); the PCN's own, server_id '', are unique by the primary key.
CREATE UNIQUE INDEX alerts_server ON alerts (server_id, id, tenant);

CREATE TABLE uplink_cursors (
    server_id  TEXT    NOT NULL,
    scn_tenant TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (server_id, scn_tenant)
);

CREATE TABLE uplink_servers (
    server_id    TEXT    PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    summaries_to INTEGER NOT NULL DEFAULT 0,
    last_data_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE message_summaries (
    server_id  TEXT    NOT NULL,
    tenant     TEXT    NOT NULL,
    scn_tenant TEXT    NOT NULL,
    sensor_id  TEXT    NOT NULL,
    bucket     INTEGER NOT NULL,
    verdict    TEXT    NOT NULL,
    messages   INTEGER NOT NULL,
    detected   INTEGER NOT NULL,
    PRIMARY KEY (server_id, scn_tenant, sensor_id, bucket, verdict)
);
CREATE INDEX message_summaries_tenant ON message_summaries (tenant, bucket);

-- +goose Down
DROP TABLE message_summaries;
DROP TABLE uplink_servers;
DROP TABLE uplink_cursors;
DROP INDEX alerts_server;
ALTER TABLE alerts DROP COLUMN server_id;
