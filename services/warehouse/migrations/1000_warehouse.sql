-- Stock levels: a projection of the seed and the fulfilment streams' events.
CREATE TABLE stock (
    sku      TEXT PRIMARY KEY,
    on_hand  BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand)
);

-- The durable pick queue: a task per order, worked by a bounded pool of pickers.
CREATE TABLE pick_tasks (
    pick_task_id   UUID PRIMARY KEY,
    order_id       UUID        NOT NULL UNIQUE,
    items          JSONB       NOT NULL,
    -- WAITING_PAYMENT -> READY -> PACKED -> SHIPPED
    status         TEXT        NOT NULL,
    due_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Context of the event that made the task workable, for the events it causes.
    correlation_id TEXT        NOT NULL DEFAULT '',
    causation_id   TEXT        NOT NULL DEFAULT '',
    traceparent    TEXT,
    tracestate     TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX pick_tasks_workable ON pick_tasks (due_at) WHERE status IN ('READY', 'PACKED');
