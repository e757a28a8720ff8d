-- What the tests' handlers applied, written in the consumer's transaction,
-- so a rolled-back attempt leaves no trace.
CREATE TABLE IF NOT EXISTS test_applied (
    seq   BIGSERIAL PRIMARY KEY,
    label TEXT NOT NULL
);
