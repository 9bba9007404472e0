-- 0005 leases and nodes: several nodes on one schema. A node's lease on an
-- execution, and the registry nodes find each other's addresses in. Both
-- times are the database's clock (ms), never a node's.

ALTER TABLE executions ADD COLUMN owner TEXT, ADD COLUMN lease_until BIGINT;
-- Only leased rows: renew looks up a node's, take_over scans them for
-- expired ones. Releasing and finishing take rows out, so this stays the
-- size of the live executions. lease_until is deliberately not indexed:
-- renewing, the most frequent lease write, then stays a HOT update.
CREATE INDEX executions_by_owner ON executions (owner) WHERE owner IS NOT NULL;
CREATE TABLE nodes (
    id          TEXT   PRIMARY KEY,
    address     TEXT   NOT NULL,
    alive_until BIGINT NOT NULL
);
