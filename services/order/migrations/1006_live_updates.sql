-- Live order updates (GET /v1/orders/{id}/events, GET /v1/orders/events).
--
-- Every instance's one listener hears of each event appended to an order
-- stream, whichever instance appended it: a NOTIFY on `order_events` with
-- the order id and its customer, sent at commit (a deferred trigger, so the
-- order view a new order is placed with is there to name the customer).
-- Costs per event: one order_view lookup by key and one NOTIFY, no round
-- trip; NOTIFY takes PostgreSQL's notify queue lock at commit.
CREATE FUNCTION notify_order_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.order_id ~ '^[0-9a-fA-F-]{36}$' THEN
        PERFORM pg_notify('order_events', NEW.order_id || ' ' || coalesce(
            (SELECT customer_id FROM order_view WHERE order_id = NEW.order_id::uuid), ''));
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER events_notify AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION notify_order_event();

-- The transaction that appended each event. A customer's feed resumes after
-- a position (tx, global_position) and reads only events of transactions
-- older than every one still running, so no event can later appear before
-- a position already sent (global_position alone is taken before commit,
-- out of commit order). Events older than this migration share its tx.
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
