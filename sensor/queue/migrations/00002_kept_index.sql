-- The queue page lists held and quarantined messages: few among many
-- deferred ones, found from this small index rather than by reading
-- every message.

-- +goose Up
CREATE INDEX rcpts_kept ON rcpts (msg) WHERE state IN (2, 3);

-- +goose Down
DROP INDEX rcpts_kept;
