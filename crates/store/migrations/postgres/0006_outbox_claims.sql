-- 0006 outbox claims: several nodes deliver the outbox. A notification being
-- delivered is claimed by one node until this time (the database's clock, ms).

ALTER TABLE outbox ADD COLUMN claimed_until BIGINT;
