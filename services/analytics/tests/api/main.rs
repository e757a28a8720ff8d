//! Service tests of the analytics API against the real PostgreSQL and broker.
mod dashboard;
mod helpers;
mod operations;
mod scopes;
mod star;
mod summary;
