//! The warehouse service owns stock and fulfilment: on `OrderPlaced` it
//! reserves stock and creates a pick task ("Item needs to be picked"); once
//! the order is paid a bounded pool of pickers picks and packs it
//! (`OrderReadyForShipment`) and ships it (`OrderShipped`). The pick queue is
//! a table, so a backlog survives a crash. It never reads other services' data.

pub mod api;
pub mod app;
pub mod application;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod import;
pub mod projection;
pub mod reconcile;
pub mod store;
pub mod wire;
pub mod workers;
