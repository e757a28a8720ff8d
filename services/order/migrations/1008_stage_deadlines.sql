-- Every waiting stage has a deadline: an order left in PLACED, PAID or
-- READY_FOR_SHIPMENT past its stage's limit is escalated (OrderEscalated).
-- The view keeps the stage it was last escalated in and when, for the
-- operators' list (escalated = still in that stage) and the gauge.
ALTER TABLE order_view ADD COLUMN escalated_status TEXT;
ALTER TABLE order_view ADD COLUMN escalated_at TIMESTAMPTZ;
