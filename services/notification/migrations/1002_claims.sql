-- Dispatchers claim the messages they send instead of locking them in a
-- transaction held across the send: claimed_until is committed before the
-- send and cleared when its answer is recorded; a claim that runs out (its
-- dispatcher died) lets another dispatcher take the message again. Only the
-- oldest QUEUED message of an order is ever claimed, so an order's messages
-- go out one at a time, in the order they were queued; clock_timestamp()
-- orders the messages one transaction queues.
ALTER TABLE notifications ADD COLUMN claimed_until TIMESTAMPTZ;
ALTER TABLE notifications ALTER COLUMN created_at SET DEFAULT clock_timestamp();
CREATE INDEX notifications_queued_order ON notifications (order_id, created_at) WHERE status = 'QUEUED';
