-- 0009 updatedAt triggers (service-owned): what Prisma's client did, the database now does.
-- Why: Prisma's @updatedAt has no database default; its client wrote the column on every create and
-- update. With several writers (this service, the old platform during the move), no writer may forget
-- it, so a trigger sets it:
--   * on INSERT, to now (UTC) when the writer gave none;
--   * on UPDATE, to now (UTC), but never earlier than the value it had, so it only moves forward even
--     when two transactions that started in one order commit in the other.
-- Times are UTC because Prisma stores UTC in TIMESTAMP(3) columns whatever the session's TimeZone is.
-- No seed column changes; only a function and three triggers are added.
-- depends: 0002_users 0006_subscriptions 0007_natal_data

-- A short lock_timeout: while this waits for a lock, every session behind it waits too, so give up
-- fast; `migrate` retries with backoff for up to MIGRATE_LOCK_WAIT and then names the blocker.
SET LOCAL lock_timeout = '2s';

SET LOCAL statement_timeout = '60s';

CREATE FUNCTION "set_updated_at"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW."updatedAt" := COALESCE(NEW."updatedAt", now() AT TIME ZONE 'UTC');
    ELSE
        NEW."updatedAt" := GREATEST(now() AT TIME ZONE 'UTC', OLD."updatedAt");
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER "users_set_updated_at" BEFORE INSERT OR UPDATE ON "users"
    FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();

CREATE TRIGGER "subscriptions_set_updated_at" BEFORE INSERT OR UPDATE ON "subscriptions"
    FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();

CREATE TRIGGER "natal_data_set_updated_at" BEFORE INSERT OR UPDATE ON "natal_data"
    FOR EACH ROW EXECUTE FUNCTION "set_updated_at"();
