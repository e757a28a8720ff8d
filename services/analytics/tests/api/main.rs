//! Service tests of the analytics API against the real PostgreSQL and broker.
mod analysts;
mod dashboard;
mod helpers;
mod operations;
mod payments;
mod rebuild;
mod scopes;
mod star;
mod summary;
mod window;
