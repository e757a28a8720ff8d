-- Live order updates (GET /v1/orders/{id}/events, GET /v1/orders/events).
--
-- Nothing runs when an event is appended: no trigger, no NOTIFY. While a
-- stream is open on an instance, its poller reads what was appended since
-- its last position, every ORDER_EVENTS_POLL_MS, with one query served by
-- `events_settled` (src/api/events/poll.rs); the customer's feed orders its
-- events the same way.
--
-- The transaction that appended each event. A position is
-- (tx, global_position), and a reader takes only events of transactions
-- older than every one still running, so no event can later appear before
-- a position already read (global_position alone is taken before commit,
-- out of commit order). Events older than this migration share its tx.
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
-- Appends land at its right-hand end (tx grows): one index entry per event.
CREATE INDEX events_settled ON events (tx, global_position);
