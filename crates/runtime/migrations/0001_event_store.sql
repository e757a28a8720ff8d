-- Runtime tables every service database has: the event store, the
-- transactional outbox and the consumer inbox.

CREATE TABLE IF NOT EXISTS events (
    global_position BIGSERIAL PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
    version         BIGINT      NOT NULL CHECK (version > 0),
    event_id        UUID        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    order_id        TEXT        NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The protobuf-encoded omnisaga.v1.Envelope.
    envelope        BYTEA       NOT NULL,
    UNIQUE (stream_id, version)
);
CREATE INDEX IF NOT EXISTS events_order_id ON events (order_id);

CREATE TABLE IF NOT EXISTS outbox (
    id           BIGSERIAL PRIMARY KEY,
    topic        TEXT        NOT NULL,
    message_key  TEXT        NOT NULL,
    payload      BYTEA       NOT NULL,
    -- Kafka headers, as a JSON object of string values (traceparent, event type, ...).
    headers      JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE IF NOT EXISTS inbox (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    topic        TEXT        NOT NULL,
    partition    INT         NOT NULL,
    "offset"     BIGINT      NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
