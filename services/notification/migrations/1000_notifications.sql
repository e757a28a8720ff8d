-- Who to tell about an order, learnt from OrderPlaced.
CREATE TABLE recipients (
    order_id     UUID PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    order_number TEXT NOT NULL
);

-- One message per source event; QUEUED until the channel took it, then SENT.
CREATE TABLE notifications (
    notification_id   UUID PRIMARY KEY,
    order_id          UUID        NOT NULL,
    source_event_id   UUID        NOT NULL UNIQUE,
    source_event_type TEXT        NOT NULL,
    template          TEXT        NOT NULL,
    text              TEXT,
    channel           TEXT,
    status            TEXT        NOT NULL DEFAULT 'QUEUED',
    correlation_id    TEXT        NOT NULL DEFAULT '',
    traceparent       TEXT,
    tracestate        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at           TIMESTAMPTZ
);
CREATE INDEX notifications_order ON notifications (order_id, created_at);
CREATE INDEX notifications_queued ON notifications (created_at) WHERE status = 'QUEUED';
