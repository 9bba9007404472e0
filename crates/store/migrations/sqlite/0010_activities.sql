-- 0010 activities: Step Functions activities (CreateActivity) and the
-- activity tasks handed to workers (GetActivityTask).
--
-- An activity is a name, its creation time and its tags (a JSON object,
-- key to value). The tasks waiting on an activity are not stored here: they
-- are the parked Tasks of running executions, rebuilt from their histories.
-- A row of activity_tasks records that a worker took the task of that
-- token, so that it is handed to one worker only, after a restart too; it
-- is removed when the task is answered, or once its deadline has passed.

CREATE TABLE activities (
    name       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    tags       TEXT NOT NULL
);

CREATE TABLE activity_tasks (
    token        TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    worker       TEXT NOT NULL,
    claimed_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX activity_tasks_expiry ON activity_tasks (expires_at);
