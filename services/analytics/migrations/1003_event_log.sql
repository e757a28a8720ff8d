-- received_events becomes the log the star schema is rebuilt from
-- (docs/rebuild.md): each event's position in it and its encoded envelope
-- (omnisaga.v1.Envelope, as received), written by the statement that
-- records the event. Events received before this migration get a position
-- but no envelope: what their payloads said is lost, so a rebuild cannot
-- make their rows, and the projection leaves them out of what it compares
-- and merges (src/store/log.rs). Adding the position rewrites the table
-- under a lock the consumer waits on: about 6.5 s per million events
-- (measured with the indexes below, on the development machine).
ALTER TABLE received_events
    ADD COLUMN log_position BIGINT GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN envelope BYTEA;
CREATE UNIQUE INDEX received_events_log_position ON received_events (log_position);
-- The events without an envelope, by order: the rows a rebuild leaves alone.
CREATE INDEX received_events_unkept ON received_events (order_id) WHERE envelope IS NULL;
