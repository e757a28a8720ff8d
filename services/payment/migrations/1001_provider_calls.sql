-- Calls to the payment provider, queued by the consumer in the transaction
-- that decided them and made by the provider callers (src/calls.rs) in their
-- own: a slow provider holds no consumer batch, and a call is made once its
-- reason is committed. A row goes in the transaction that records the answer
-- (an authorisation) or after the provider confirmed (a void).
CREATE TABLE provider_calls (
    id              BIGSERIAL   PRIMARY KEY,
    payment_id      TEXT        NOT NULL,
    order_id        UUID        NOT NULL,
    action          TEXT        NOT NULL CHECK (action IN ('AUTHORIZE', 'VOID')),
    -- AUTHORIZE: the attempt's number, and the amount of a first attempt
    -- (a retry charges the amount the stream holds).
    attempt         INT         NOT NULL,
    amount_minor    BIGINT,
    currency        TEXT,
    payment_method_token TEXT   NOT NULL DEFAULT '',
    correlation_id  TEXT        NOT NULL,
    causation_id    TEXT        NOT NULL,
    traceparent     TEXT,
    tracestate      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (payment_id, action)
);
