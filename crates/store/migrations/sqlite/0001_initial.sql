-- 0001 initial: definitions, executions, their events and durable timers.

CREATE TABLE definitions (
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    format     TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE executions (
    -- Creation order: drives newest-first listing and the cursor.
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    definition TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    input      TEXT    NOT NULL,
    output     TEXT,
    error      TEXT,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    events     INTEGER NOT NULL
);
CREATE INDEX executions_by_status ON executions (status, seq);
CREATE INDEX executions_by_definition ON executions (definition, seq);
CREATE TABLE events (
    execution_id TEXT    NOT NULL REFERENCES executions (id),
    seq          INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    type         TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
CREATE TABLE timers (
    execution_id TEXT    NOT NULL REFERENCES executions (id),
    step         TEXT    NOT NULL,
    task         TEXT    NOT NULL,
    attempt      INTEGER NOT NULL,
    fire_at      INTEGER NOT NULL
);
CREATE INDEX timers_by_fire_at ON timers (fire_at);
