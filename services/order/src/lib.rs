//! The order service owns orders: its HTTP API takes and shows them, each
//! order is an event stream in the order database, and it records what
//! payment and the warehouse report about an order into that stream, so it is
//! the saga's owner and the source of the order timeline. It never reads
//! another service's tables; it learns everything from their topics.

pub mod api;
pub mod app;
pub mod application;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod projection;
pub mod store;
pub mod wire;
pub mod workers;
