-- 0016 rollback: nothing to undo. The values it filled in live in columns that 0014's rollback drops;
-- until then they are what the service itself would have written.
SELECT 1;
