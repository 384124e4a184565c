-- The delivery queue. Times are Unix microseconds.

-- +goose Up
CREATE TABLE messages (
    id           TEXT    NOT NULL PRIMARY KEY,
    sender       TEXT    NOT NULL,
    arrival      INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    verdict      TEXT    NOT NULL,
    direction    TEXT    NOT NULL,
    unscanned    INTEGER NOT NULL,
    -- kind is "" for mail, "failure" or "delay" for a notice of ours.
    kind         TEXT    NOT NULL,
    -- delay_notice is 1 once the delay notice went out (once a message).
    delay_notice INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_arrival ON messages (arrival, id);

-- The bodies apart, so that the messages' rows stay small and dense.
CREATE TABLE bodies (
    id   TEXT NOT NULL PRIMARY KEY,
    body BLOB NOT NULL
);

-- state: 0 active (never tried), 1 deferred (tried, waiting), 2 held,
-- 3 quarantined, 4 delivered, 5 bounced.
CREATE TABLE rcpts (
    msg           TEXT    NOT NULL,
    rcpt          TEXT    NOT NULL,
    dest          TEXT    NOT NULL,
    state         INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL,
    first_attempt INTEGER NOT NULL DEFAULT 0,
    last_attempt  INTEGER NOT NULL DEFAULT 0,
    last_code     INTEGER NOT NULL DEFAULT 0,
    last_enhanced TEXT    NOT NULL DEFAULT '',
    last_text     TEXT    NOT NULL DEFAULT '',
    last_host     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (msg, rcpt)
) WITHOUT ROWID;
-- The scheduler pages the recipients to try from here, earliest first.
CREATE INDEX rcpts_due ON rcpts (next_attempt, msg, dest) WHERE state <= 1;

-- Recipients per state, kept by every transaction that moves one, so that
-- Open knows the depths without counting a million rows.
CREATE TABLE counts (
    state INTEGER NOT NULL PRIMARY KEY,
    n     INTEGER NOT NULL
);
-- state 6 counts the messages.
INSERT INTO counts (state, n) VALUES (0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0);

-- +goose Down
DROP TABLE counts;
DROP TABLE rcpts;
DROP TABLE bodies;
DROP TABLE messages;
