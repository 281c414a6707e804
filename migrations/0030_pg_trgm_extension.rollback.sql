-- Rollback of 0030: drops pg_trgm (RESTRICT: refused while another object still uses it).
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

-- This rollback exists to drop it: nothing else in the schema uses pg_trgm once 0031 is rolled back.
-- squawk-ignore ban-drop-extension
DROP EXTENSION IF EXISTS pg_trgm RESTRICT;
