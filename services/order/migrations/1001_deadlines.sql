-- Saga deadlines: when an order waiting for payment is cancelled, and
-- whether the customer was told that payment is delayed.
ALTER TABLE order_view ADD COLUMN payment_deadline_at TIMESTAMPTZ;
ALTER TABLE order_view ADD COLUMN delay_noticed BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX order_view_waiting ON order_view (status) WHERE status IN ('PLACED', 'AWAITING_PAYMENT');
