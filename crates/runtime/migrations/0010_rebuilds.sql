-- Read models rebuilt from events (src/es/rebuild): a rebuild makes its
-- copies of a projection's tables in the schema `rebuild` (the role the
-- service runs as may create tables there and nowhere else), and each run,
-- its progress and its report are kept in `rebuilds`. One runs at a time;
-- a run whose instance stopped beating is abandoned (nothing of it reached
-- the live tables: its merge is one transaction).
CREATE SCHEMA IF NOT EXISTS rebuild;

CREATE TABLE IF NOT EXISTS rebuilds (
    id           BIGSERIAL PRIMARY KEY,
    mode         TEXT        NOT NULL CHECK (mode IN ('verify', 'rebuild')),
    projections  TEXT[]      NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'running'
                             CHECK (status IN ('running', 'finished', 'failed', 'abandoned')),
    events_done  BIGINT      NOT NULL DEFAULT 0,
    events_total BIGINT      NOT NULL DEFAULT 0,
    report       JSONB,
    identical    BOOLEAN,
    error        TEXT,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS rebuilds_one_running ON rebuilds ((true)) WHERE status = 'running';
