-- 0007 list by definition and status: the console's executions list filters
-- by both at once. With only the (status, seq) and (definition, seq) indexes
-- the planner walks one and checks the other column row by row (14.6 ms p99
-- with 100,000 executions); this index answers the page directly.

CREATE INDEX executions_by_definition_status ON executions (definition, status, seq);
