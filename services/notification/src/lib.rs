//! The notification service tells the customer about their order: one chat
//! message per saga event ("Order created", "Payment confirmed", "Ready for
//! shipment", "Shipped", "Payment failed: please retry"). A message is queued
//! in the same transaction as the event's inbox record, then a dispatcher
//! hands it to the delivery channel (the log, or a signed webhook) and
//! publishes `NotificationSent`. A
//! message the channel refuses is tried again later, and after the last
//! attempt kept as dead for an operator to retry; it holds back no other.

pub mod api;
pub mod app;
pub mod application;
pub mod channel;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod projection;
pub mod reconcile;
pub mod store;
pub mod webhook;
pub mod wire;
pub mod workers;
