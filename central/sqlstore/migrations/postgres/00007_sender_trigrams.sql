-- A search by sender substring ("@example.com", "billing") over a busy
-- day read every entry of the day in the time index, about 2 µs each: over
-- 10 million events, a day of 333,000 took 300 ms and more. Trigram
-- indexes (pg_trgm, part of every PostgreSQL distribution's contrib, a
-- trusted extension that the database's owner may create) find the rows
-- whose senders hold the text, however far back, and the time range and
-- the tenant filter those. SQLite reads the day from its covering index
-- fast enough (see docs/BENCHMARKS.md) and has no trigram index.

-- +goose Up
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_mail_from_trgm ON messages USING gin (mail_from gin_trgm_ops);
CREATE INDEX messages_header_from_trgm ON messages USING gin (header_from gin_trgm_ops);
CREATE INDEX refusals_mail_from_trgm ON refusals USING gin (mail_from gin_trgm_ops);

-- +goose Down
DROP INDEX refusals_mail_from_trgm;
DROP INDEX messages_header_from_trgm;
DROP INDEX messages_mail_from_trgm;
