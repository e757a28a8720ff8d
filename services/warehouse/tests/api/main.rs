//! Service tests of the warehouse API against the real PostgreSQL and broker.
mod fulfilment;
mod helpers;
mod pick_backlog;
mod picking;
mod rebuild;
mod receipts;
mod reconcile;
mod scopes;
mod stock;
mod stock_import;
