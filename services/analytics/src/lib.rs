//! The analytics service records when each order reached each saga stage
//! and answers with fulfilment time percentiles (placed to ready for
//! shipment, placed to shipped) and the share of successful payments. Its
//! tables are projections of the events it received, kept in its own database.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod store;
