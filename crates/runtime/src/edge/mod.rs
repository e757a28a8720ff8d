//! The HTTP edge: the error envelope and the request middleware,
//! authentication, limits, the audit log, OpenAPI, deprecation, batch
//! imports, the probes, metrics and admin routes, the server loop and TLS,
//! and the outbound HTTP client. It stands on every layer below it.

pub mod audit;
pub mod auth;
pub mod batch;
pub mod cached;
pub mod consumers;
pub mod context;
pub mod dead_letters;
pub mod deprecation;
pub mod health;
#[cfg(test)]
mod hostile;
pub mod http;
pub mod http_client;
pub mod input;
pub mod limits;
pub mod openapi;
pub mod page;
pub mod rebuilds;
pub mod reconcile;
pub mod routes;
pub mod scrape;
pub mod server;
pub mod tls;
