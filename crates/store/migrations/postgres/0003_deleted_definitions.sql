-- 0003 deleted definitions (DeleteStateMachine): a deleted definition's
-- versions stay (running executions and histories need them) but the name
-- has no latest.

ALTER TABLE definitions ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
