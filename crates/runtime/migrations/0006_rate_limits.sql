-- Each API client's rate limit (runtime/src/limits.rs), shared by every
-- instance of the service behind a load balancer: one row per client (a
-- token's subject) holding its bucket as GCRA's theoretical arrival time,
-- in seconds since the epoch. A row whose time has passed is a full bucket,
-- the same as no row, and is pruned now and then.
--
-- UNLOGGED: no WAL and no fsync for a request's bookkeeping. A crash of the
-- database empties the table (and a standby does not have it), which only
-- gives every client its burst again.
CREATE UNLOGGED TABLE IF NOT EXISTS rate_limits (
    client TEXT PRIMARY KEY,
    tat    DOUBLE PRECISION NOT NULL
);
