-- The audit log by month, so old entries go without anyone's DELETE: the
-- table is partitioned on `at`, a month a partition, and a privileged job
-- (the database owner, never the service's role) runs
-- `audit_log_rotate(keep_months, ahead_months)`, which makes the months
-- ahead and drops whole months past the retention (docs/security.md). A
-- DEFAULT partition takes any row no month holds, so a job that has not
-- run never costs a call its audit entry.
--
-- Also kept now: the size and SHA-256 of the body the service read, beside
-- the bounded, redacted excerpt in `payload` (runtime/src/audit.rs).
--
-- The rows of the table as it was stay where they are: the old table is
-- attached whole as the partition of everything before next month.
DO $$
DECLARE
    next_month timestamptz := date_trunc('month', now()) + interval '1 month';
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_log'::regclass) = 'p' THEN
        RETURN;
    END IF;
    ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS body_bytes BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS body_sha256 TEXT;
    ALTER TABLE audit_log RENAME TO audit_log_before;
    ALTER INDEX audit_log_subject RENAME TO audit_log_before_subject;
    ALTER TABLE audit_log_before DROP CONSTRAINT audit_log_pkey;
    DROP TRIGGER audit_log_no_change ON audit_log_before;
    ALTER SEQUENCE audit_log_id_seq OWNED BY NONE;

    CREATE TABLE audit_log (
        id          BIGINT      NOT NULL DEFAULT nextval('audit_log_id_seq'),
        at          TIMESTAMPTZ NOT NULL DEFAULT now(),
        subject     TEXT        NOT NULL,
        scopes      TEXT        NOT NULL,
        method      TEXT        NOT NULL,
        route       TEXT        NOT NULL,
        path        TEXT        NOT NULL,
        request_id  TEXT        NOT NULL,
        status      INT         NOT NULL,
        outcome     TEXT        NOT NULL,
        payload     JSONB,
        body_bytes  BIGINT      NOT NULL DEFAULT 0,
        body_sha256 TEXT,
        PRIMARY KEY (id, at)
    ) PARTITION BY RANGE (at);
    ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
    CREATE INDEX audit_log_subject ON audit_log (subject, id);
    CREATE INDEX audit_log_id ON audit_log (id);
    EXECUTE format('ALTER TABLE audit_log ATTACH PARTITION audit_log_before FOR VALUES FROM (MINVALUE) TO (%L)', next_month);
    CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
    -- Row triggers reach every partition from the parent; a statement's
    -- TRUNCATE of one partition does not, so each has its own.
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log_default
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;
END
$$;

-- Makes the partitions of this month and `ahead_months` after it, and
-- drops every month partition that ended more than `keep_months` months
-- ago (the attached table of the earlier rows too, once its end is that
-- old). `today` is for tests; the job leaves it out. Returns what it did, a line each. Run by the database's owner:
-- creating and dropping partitions needs ownership, which the service's
-- role does not have (SECURITY INVOKER, the default, so it grants nothing).
CREATE OR REPLACE FUNCTION audit_log_rotate(keep_months INT, ahead_months INT DEFAULT 3, today TIMESTAMPTZ DEFAULT now())
RETURNS SETOF TEXT LANGUAGE plpgsql AS $$
DECLARE
    month timestamptz;
    part record;
    upper_bound timestamptz;
    cutoff timestamptz := date_trunc('month', today) - make_interval(months => keep_months);
BEGIN
    IF keep_months < 1 OR ahead_months < 0 THEN
        RAISE EXCEPTION 'keep_months must be at least 1 and ahead_months at least 0';
    END IF;
    FOR i IN 0..ahead_months LOOP
        month := date_trunc('month', today) + make_interval(months => i);
        IF to_regclass(format('audit_log_%s', to_char(month, 'YYYYMM'))) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                    'audit_log_' || to_char(month, 'YYYYMM'), month, month + interval '1 month');
                EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I '
                    'FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only()',
                    'audit_log_' || to_char(month, 'YYYYMM'));
                RETURN NEXT 'created audit_log_' || to_char(month, 'YYYYMM');
            EXCEPTION WHEN invalid_object_definition OR check_violation THEN
                -- Covered already (the attached earlier table), or rows of
                -- that month wait in the default partition: left as it is.
                RETURN NEXT 'kept ' || to_char(month, 'YYYY-MM') || ' where it is: ' || SQLERRM;
            END;
        END IF;
    END LOOP;
    FOR part IN
        SELECT c.oid::regclass::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_log'::regclass
    LOOP
        CONTINUE WHEN part.bound = 'DEFAULT';
        upper_bound := substring(part.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
        IF upper_bound IS NOT NULL AND upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', part.name);
            RETURN NEXT 'dropped ' || part.name;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION audit_log_rotate(INT, INT, TIMESTAMPTZ) FROM PUBLIC;
SELECT audit_log_rotate(1200, 3);
