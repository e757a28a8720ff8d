-- The payment service keeps only its event streams (payment-<order id>) and
-- the runtime tables; this view lists payments for support.
CREATE TABLE payment_view (
    order_id    UUID PRIMARY KEY,
    status      TEXT        NOT NULL,
    attempts    INT         NOT NULL,
    amount_minor BIGINT     NOT NULL,
    currency    TEXT        NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
