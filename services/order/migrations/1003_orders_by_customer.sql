-- GET /v1/orders pages through a customer's orders by order id (UUIDv7,
-- so newest first is highest first).
CREATE INDEX order_view_customer_orders ON order_view (customer_id, order_id DESC);
