-- The results of recipient verification's probes. Times are Unix
-- microseconds.

-- +goose Up
CREATE TABLE results (
    -- addr is the recipient, lower-cased.
    addr    TEXT    NOT NULL PRIMARY KEY,
    -- found is 1 when the next hop took the recipient, 0 when it refused it.
    found   INTEGER NOT NULL,
    -- reply is the next hop's reply to RCPT, without its codes.
    reply   TEXT    NOT NULL,
    -- checked is when the probe ran.
    checked INTEGER NOT NULL
);
-- Expiry and eviction go oldest first.
CREATE INDEX results_checked ON results (checked);

-- +goose Down
DROP TABLE results;
