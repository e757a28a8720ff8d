-- Dead letters an operator discarded (POST /v1/admin/dead-letters/{id}/discard):
-- kept with the reason given, out of the way of the key's later records.
CREATE TABLE IF NOT EXISTS discarded_dead_letters (
    LIKE dead_letters,
    reason       TEXT        NOT NULL,
    discarded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
