-- The messages delivered (or deleted) while unscanned: their verdict
-- comes later, when a central answers, and hands them to Enqueue again,
-- which must not deliver them a second time. Kept 30 days.

-- +goose Up
CREATE TABLE released (
	id TEXT PRIMARY KEY,
	at INTEGER NOT NULL -- Unix µs: when it left the queue
) WITHOUT ROWID;

-- +goose Down
DROP TABLE released;
