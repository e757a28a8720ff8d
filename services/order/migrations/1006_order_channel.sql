-- GET /v1/admin/orders filters by the channel an order was placed through:
-- the view keeps it from now on (orders placed before have none, and a
-- channel filter does not find them; their stream still says it).
ALTER TABLE order_view ADD COLUMN channel TEXT;
