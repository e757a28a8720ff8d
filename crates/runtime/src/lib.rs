//! Plumbing every omnisaga service shares and no domain: the topic catalog
//! (`schemas/topics.json`, compiled in), configuration, JSON logs, graceful
//! shutdown, the PostgreSQL pool and migrations, the event store and the
//! aggregate executor over it, the transactional outbox and its
//! relay, the Kafka consumer loop with its inbox, and the HTTP error envelope.
//! Test support (`testing`) sits behind the `testing` feature, which only
//! tests turn on.
//! The runtime never imports a service.

pub mod aggregate;
pub mod audit;
pub mod auth;
pub mod batch;
pub mod cached;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod db;
pub mod dead_letter;
pub mod deprecation;
pub mod event;
pub mod failpoint;
pub mod hand_back;
#[cfg(test)]
mod hostile;
pub mod http;
pub mod http_client;
pub mod input;
pub mod kafka;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod page;
pub mod probe;
pub mod progress;
pub mod reconcile;
pub mod routes;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod upcast;
pub mod work;

pub use event::{EventMeta, TraceContext};
/// The topic catalog (`schemas/topics.json`), its own crate so the CLI reads
/// it without the runtime.
pub use omnisaga_catalog as catalog;
pub use omnisaga_proto::v1 as pb;
