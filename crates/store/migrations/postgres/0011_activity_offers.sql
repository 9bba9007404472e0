-- 0011 activity offers: the activity tasks waiting for a worker, in the
-- store, so that a worker polling any node of a cluster gets the tasks of
-- executions that other nodes run.
--
-- A row is offered when an execution parks on an activity Task (and again,
-- harmlessly, when its execution is recovered); it goes when a worker takes
-- the task (a row of activity_tasks records that, in the same write), when
-- the task is answered, or once its deadline has passed. `input` is the
-- task's effective input as JSON text.

CREATE TABLE activity_offers (
    token        TEXT PRIMARY KEY,
    activity     TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    input        TEXT NOT NULL,
    offered_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX activity_offers_by_activity ON activity_offers (activity, offered_at, token);
CREATE INDEX activity_offers_expiry ON activity_offers (expires_at);
