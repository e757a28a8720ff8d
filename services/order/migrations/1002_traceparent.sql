-- The trace context of the request that placed the order, so work the order
-- service starts by itself (deadlines) joins the order's trace.
ALTER TABLE order_view ADD COLUMN traceparent TEXT;
