-- 0007 list by definition and status: the console's executions list filters
-- by both at once; this index answers such a page without checking rows one
-- by one (as PostgreSQL's 0007).

CREATE INDEX executions_by_definition_status ON executions (definition, status, seq);
