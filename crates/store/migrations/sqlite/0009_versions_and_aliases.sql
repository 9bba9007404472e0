-- 0009 versions and aliases (Step Functions' PublishStateMachineVersion and
-- CreateStateMachineAlias). Every definition version is a revision; a row of
-- definition_versions marks one as published, with its description. An
-- alias routes to one or two published versions, by weight (routing: JSON
-- [[version, weight], ...]). Only a live definition has them; deleting it
-- deletes them. execution_origins records, for an execution started through
-- a version or an alias ARN, that version's number or the alias's name (the
-- version it runs is the execution's own `version`).

CREATE TABLE definition_versions (
    name         TEXT    NOT NULL,
    version      INTEGER  NOT NULL,
    description  TEXT    NOT NULL,
    published_at INTEGER  NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE definition_aliases (
    name        TEXT    NOT NULL,
    alias       TEXT    NOT NULL,
    description TEXT    NOT NULL,
    routing     TEXT    NOT NULL,
    created_at  INTEGER  NOT NULL,
    updated_at  INTEGER  NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE execution_origins (
    id        TEXT NOT NULL PRIMARY KEY,
    qualifier TEXT NOT NULL
);
