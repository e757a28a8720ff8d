//! Service tests of the analytics API against the real PostgreSQL and broker.
mod helpers;
mod operations;
mod summary;
