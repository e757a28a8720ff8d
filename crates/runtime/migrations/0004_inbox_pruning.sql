-- no-transaction
-- The relay prunes inbox rows older than the inbox retention
-- (INBOX_RETENTION_HOURS); it finds them by when they were processed.
-- Built concurrently: an existing inbox keeps taking writes meanwhile.
CREATE INDEX CONCURRENTLY IF NOT EXISTS inbox_processed_at ON inbox (processed_at);
