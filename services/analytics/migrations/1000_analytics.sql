-- Every business event analytics received: its own event log; the tables
-- below are projections of it and can be rebuilt from it.
CREATE TABLE received_events (
    event_id    UUID PRIMARY KEY,
    order_id    UUID        NOT NULL,
    event_type  TEXT        NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    topic       TEXT        NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX received_events_type ON received_events (event_type);

-- When each order reached each stage (first time seen).
CREATE TABLE order_stages (
    order_id         UUID PRIMARY KEY,
    placed_at        TIMESTAMPTZ,
    paid_at          TIMESTAMPTZ,
    payment_failures INT NOT NULL DEFAULT 0,
    ready_at         TIMESTAMPTZ,
    shipped_at       TIMESTAMPTZ,
    cancelled_at     TIMESTAMPTZ
);
