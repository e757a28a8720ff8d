-- The stuck-saga gauge (omnisaga_sagas_stuck) counts open orders by how
-- long they have not changed, at every scrape: an index on the open ones
-- only, so the count reads a few rows however many orders have finished.
CREATE INDEX order_view_open ON order_view (status, updated_at)
    WHERE status IN ('PLACED', 'PAID', 'READY_FOR_SHIPMENT');
