-- Reconciliation (POST /v1/admin/reconcile) lists the orders shipped in a
-- window of time: an index on the shipped ones by when they last changed,
-- so the list reads the window's rows however many orders there are.
CREATE INDEX order_view_shipped ON order_view (updated_at) WHERE status = 'SHIPPED';
