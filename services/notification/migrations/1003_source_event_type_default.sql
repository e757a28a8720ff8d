-- A sent message a rebuild adds back from its NotificationSent event
-- (docs/rebuild.md) gets every column the event decides; the type of the
-- event that queued it is not among them (the template names it only up
-- to its version: "shipped" is OrderShipped or OrderShippedV2), so such a
-- row says '' (unknown) rather than guess.
ALTER TABLE notifications ALTER COLUMN source_event_type SET DEFAULT '';
