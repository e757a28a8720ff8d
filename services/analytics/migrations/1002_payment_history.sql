-- Each customer's payment history, for a CRM's loyalty bonuses
-- (GET /v1/customers/{id}/payments, docs/analytics.md): the customer an
-- order's placement names, and one row per payment answer or void with what
-- its event says. Events received before this migration kept no payload:
-- their orders have no customer and their payments no row here.
ALTER TABLE fact_orders ADD COLUMN customer_id TEXT;
CREATE INDEX fact_orders_customer ON fact_orders (customer_id) WHERE customer_id IS NOT NULL;

CREATE TABLE fact_payments (
    event_id           UUID        PRIMARY KEY,
    order_id           UUID        NOT NULL,
    payment_id         TEXT        NOT NULL,
    -- The attempt's number, from 1; NULL for a void.
    attempt            INT,
    outcome            TEXT        NOT NULL CHECK (outcome IN ('authorized', 'declined', 'voided')),
    amount_minor_units BIGINT      NOT NULL,
    currency           TEXT        NOT NULL,
    -- The provider's reason for a decline; empty otherwise.
    reason             TEXT        NOT NULL,
    occurred_at        TIMESTAMPTZ NOT NULL,
    day                DATE        NOT NULL REFERENCES dim_day
);
-- A customer's payments: their orders' rows, newest first.
CREATE INDEX fact_payments_order ON fact_payments (order_id, occurred_at);
