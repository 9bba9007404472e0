-- 0002 outbox: the notification outbox. A row is inserted by the append that
-- finishes an execution (same transaction) and deleted once the hook has
-- delivered it. AUTOINCREMENT: ids are never reused, so an acknowledged id
-- cannot come back as another notification.

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT    NOT NULL REFERENCES executions (id),
    status       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
