-- Dead letters an operator skipped (POST /v1/admin/dead-letters/{id}/skip):
-- kept with the reason given and the event id that was marked applied in
-- the consumer's inbox, so a copy of the event that comes again is dropped
-- as a duplicate instead of parking its order anew.
CREATE TABLE IF NOT EXISTS skipped_dead_letters (
    LIKE dead_letters,
    event_id   UUID        NOT NULL,
    reason     TEXT        NOT NULL,
    skipped_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
