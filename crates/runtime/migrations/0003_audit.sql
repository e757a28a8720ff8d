-- The audit log: every state-changing API call, who made it and how it
-- ended, the body redacted (runtime/src/audit.rs). Append-only: no update,
-- delete or truncate, not even by the service's own role, which owns it.
CREATE TABLE IF NOT EXISTS audit_log (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The token's subject and scopes.
    subject    TEXT        NOT NULL,
    scopes     TEXT        NOT NULL,
    method     TEXT        NOT NULL,
    -- The route template, e.g. /v1/orders/{id}/cancel, and the path asked.
    route      TEXT        NOT NULL,
    path       TEXT        NOT NULL,
    request_id TEXT        NOT NULL,
    status     INT         NOT NULL,
    -- "ok", or the error code answered.
    outcome    TEXT        NOT NULL,
    -- The JSON body with personal data and secrets replaced by "***".
    payload    JSONB
);
CREATE INDEX IF NOT EXISTS audit_log_subject ON audit_log (subject, id);

CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;
DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER;
