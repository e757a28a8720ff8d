-- The payment-provider simulator's own records (src/provider.rs): each
-- payment id's first answer and when its authorisation was voided. A real
-- provider keeps these in its own system; the simulator keeps them here,
-- written in statements of their own and never in the payment service's
-- transactions, so they survive a crash of the service exactly as a
-- provider's would, and an approval whose recording was lost stays visible.
-- Rows older than PAYMENT_PROVIDER_LEDGER_DAYS are pruned.
CREATE TABLE provider_ledger (
    payment_id  TEXT        PRIMARY KEY,
    outcome     TEXT        NOT NULL CHECK (outcome IN ('APPROVED', 'DECLINED')),
    -- The decline reason; empty for an approval.
    reason      TEXT        NOT NULL DEFAULT '',
    answered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    voided_at   TIMESTAMPTZ
);
CREATE INDEX provider_ledger_answered_at ON provider_ledger (answered_at);
