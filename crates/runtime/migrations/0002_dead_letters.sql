-- Sequenced dead letters: a record a consumer could not handle is kept here
-- (and copied to <topic>.dlq for visibility); its key is parked, so later
-- records of the same order wait behind it instead of overtaking it.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    consumer    TEXT        NOT NULL,
    message_key TEXT        NOT NULL,
    topic       TEXT        NOT NULL,
    partition   INT         NOT NULL,
    "offset"    BIGINT      NOT NULL,
    event_type  TEXT,
    payload     BYTEA       NOT NULL,
    headers     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    error       TEXT        NOT NULL,
    attempts    INT         NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dead_letters_key ON dead_letters (consumer, message_key, id);

CREATE TABLE IF NOT EXISTS parked (
    consumer    TEXT        NOT NULL,
    message_key TEXT        NOT NULL,
    parked_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_key)
);

-- A record re-read (a replayed topic) is parked once.
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_source ON dead_letters (consumer, topic, partition, "offset");
