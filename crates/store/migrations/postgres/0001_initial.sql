-- 0001 initial: definitions, executions, their events and durable timers.
--
-- Every integer is a BIGINT (SQLite integers are 64-bit, and versions and
-- attempts are u32, which INTEGER cannot hold). JSON is kept as TEXT, byte
-- for byte what was written, as in SQLite: jsonb would reorder keys and drop
-- duplicates, and the store never queries inside it.

CREATE TABLE definitions (
    name       TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    format     TEXT   NOT NULL,
    source     TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE executions (
    -- Creation order: drives newest-first listing and the cursor.
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT   NOT NULL UNIQUE,
    definition TEXT   NOT NULL,
    version    BIGINT NOT NULL,
    status     TEXT   NOT NULL,
    input      TEXT   NOT NULL,
    output     TEXT,
    error      TEXT,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    events     BIGINT NOT NULL
);
CREATE INDEX executions_by_status ON executions (status, seq);
CREATE INDEX executions_by_definition ON executions (definition, seq);
CREATE TABLE events (
    execution_id TEXT   NOT NULL REFERENCES executions (id),
    seq          BIGINT NOT NULL,
    at           BIGINT NOT NULL,
    type         TEXT   NOT NULL,
    body         TEXT   NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE TABLE timers (
    -- Insertion order, the tie-break between equal fire_at (SQLite's rowid).
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id TEXT   NOT NULL REFERENCES executions (id),
    step         TEXT   NOT NULL,
    task         TEXT   NOT NULL,
    attempt      BIGINT NOT NULL,
    fire_at      BIGINT NOT NULL
);
CREATE INDEX timers_by_fire_at ON timers (fire_at, id);
