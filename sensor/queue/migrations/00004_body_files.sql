-- Large bodies live in files of their own (see body.go): file names the
-- body's file in the queue's bodies directory, and body is then empty.

-- +goose Up
ALTER TABLE bodies ADD COLUMN file TEXT NOT NULL DEFAULT '';
CREATE INDEX bodies_file ON bodies (file) WHERE file <> '';

-- +goose Down
DROP INDEX bodies_file;
ALTER TABLE bodies DROP COLUMN file;
