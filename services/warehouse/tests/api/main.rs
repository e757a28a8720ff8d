//! Service tests of the warehouse API against the real PostgreSQL and broker.
mod helpers;
mod pick_backlog;
mod stock;
