//! Service tests of the notification API against the real PostgreSQL and broker.
mod dead;
mod helpers;
mod list;
mod rebuild;
mod reconcile;
mod scopes;
