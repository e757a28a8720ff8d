-- A message the channel refuses is tried again later, with a growing wait:
-- how often it was tried, the channel's last answer and when it falls due
-- again (NULL: at once). After NOTIFICATION_MAX_ATTEMPTS refusals it is DEAD
-- (kept, with its reason) until an operator retries it.
ALTER TABLE notifications
    ADD COLUMN attempts        INTEGER     NOT NULL DEFAULT 0,
    ADD COLUMN last_error      TEXT,
    ADD COLUMN last_attempt_at TIMESTAMPTZ,
    ADD COLUMN next_attempt_at TIMESTAMPTZ,
    ADD COLUMN dead_at         TIMESTAMPTZ;
CREATE INDEX notifications_dead ON notifications (dead_at) WHERE status = 'DEAD';
