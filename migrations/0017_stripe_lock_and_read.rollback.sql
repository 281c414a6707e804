-- 0017 rollback: the function goes; the service before 0017 locks and reads in two statements.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

DROP FUNCTION "stripe_lock_and_read"(TEXT, TEXT, TEXT);
