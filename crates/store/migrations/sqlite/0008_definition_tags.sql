-- 0008 definition tags: the tags of a state machine (Step Functions'
-- TagResource), key and value by definition name. Only a live definition
-- has tags; deleting it deletes them.

CREATE TABLE definition_tags (
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
