-- 0004 notification kinds and dead letters: what a notification announces (a
-- finish, or a stuck compensation), and the dead letters: notifications whose
-- delivery gave up, kept (same id) until someone replays them.

ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'finished';
CREATE TABLE dead_letters (
    id           BIGINT PRIMARY KEY,
    execution_id TEXT   NOT NULL REFERENCES executions (id),
    status       TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    failed_at    BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    last_error   TEXT   NOT NULL
);
