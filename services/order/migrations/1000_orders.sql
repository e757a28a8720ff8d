-- The order service's own tables (the runtime adds events, outbox and inbox).

CREATE TABLE catalog (
    sku              TEXT PRIMARY KEY,
    name             TEXT   NOT NULL,
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    currency         TEXT   NOT NULL CHECK (currency ~ '^[A-Z]{3}$')
);

CREATE SEQUENCE order_number_seq START 100001;

-- Idempotency-Key records: the first response is replayed for a retry with the same body.
CREATE TABLE idempotency_keys (
    customer_id  TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    request_hash BYTEA       NOT NULL,
    order_id     UUID        NOT NULL,
    response     JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, key)
);

-- Read model of orders, a projection of the order streams.
CREATE TABLE order_view (
    order_id     UUID PRIMARY KEY,
    order_number TEXT        NOT NULL UNIQUE,
    customer_id  TEXT        NOT NULL,
    status       TEXT        NOT NULL,
    trace_id     TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX order_view_customer ON order_view (customer_id, created_at DESC);
