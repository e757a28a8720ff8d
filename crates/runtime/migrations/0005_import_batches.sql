-- Batch imports applied (runtime/src/batch.rs): one row per kind and batch
-- id, written in the batch's own transaction, so an id is applied once and
-- the same id sent again with the same file (its SHA-256) answers as
-- applied without applying anything.
CREATE TABLE IF NOT EXISTS import_batches (
    kind        TEXT        NOT NULL,
    batch_id    TEXT        NOT NULL,
    body_sha256 BYTEA       NOT NULL,
    rows        INT         NOT NULL,
    -- Who sent it: the token's subject.
    subject     TEXT        NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, batch_id)
);
