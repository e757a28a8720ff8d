-- A caller leases the call it makes instead of holding a transaction
-- across the provider's answer (src/calls.rs): the lease is committed when
-- the call is claimed, and the answer is recorded in a transaction of its
-- own. A call whose caller died is claimed again once its lease ran out.
ALTER TABLE provider_calls ADD COLUMN leased_until TIMESTAMPTZ;
