-- 0002 outbox: the notification outbox (see Append::notify).
--
-- Before the numbering was shared, this was part of PostgreSQL's migration 1
-- (see migrations/README.md).

-- Identity ids are never reused, so an acknowledged id cannot come back.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id TEXT   NOT NULL REFERENCES executions (id),
    status       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
