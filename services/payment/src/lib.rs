//! The payment service authorises each order's amount with the payment
//! provider (a simulator inside the service, see [`provider`]) and publishes
//! `PaymentAuthorized` ("Payment successful") or `PaymentFailed`. It owns the
//! payment streams in its own database and never touches another service's.

pub mod api;
pub mod app;
pub mod application;
pub mod config;
pub mod domain;
pub mod handlers;
pub mod orders;
pub mod projection;
pub mod provider;
pub mod reconcile;
pub mod store;
pub mod wire;
pub mod workers;
