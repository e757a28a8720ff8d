//! Service tests of the payment API against the real PostgreSQL and broker.
mod helpers;
mod payments;
mod provider_switch;
mod rebuild;
mod reconcile;
mod scopes;
