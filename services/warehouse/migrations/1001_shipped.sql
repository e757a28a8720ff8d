-- What left the building, per SKU. Shipping lowers on hand and reserved
-- alike, so it never changes what can be reserved; kept in its own row, it
-- no longer waits for the `stock` row that every reservation of the SKU
-- locks until its transaction commits (a hot SKU made the pickers queue
-- behind the reservations). `stock` now counts what came in and what was
-- reserved, shipped goods included; `stock_levels` gives the levels.
-- No foreign key to `stock`: checking it would share-lock the `stock` row.
CREATE TABLE shipped (
    sku      TEXT PRIMARY KEY,
    quantity BIGINT NOT NULL CHECK (quantity >= 0)
);

CREATE VIEW stock_levels AS
SELECT s.sku,
       s.on_hand - coalesce(x.quantity, 0) AS on_hand,
       s.reserved - coalesce(x.quantity, 0) AS reserved
FROM stock s LEFT JOIN shipped x USING (sku);
