//! Plumbing every omnisaga service shares and no domain, in layers that
//! import downward only (CONTRIBUTING.md, "The runtime's layers";
//! `tests/layers.rs` holds the rule):
//!
//! - [`boot`]: what a service does at start and stop: configuration, JSON
//!   logs and traces, graceful shutdown, the service's parts started and
//!   stopped together.
//! - [`edge`]: the HTTP edge: the error envelope, authentication, limits,
//!   the audit log, OpenAPI, deprecation, batch imports, the admin routes,
//!   the server loop and TLS, the outbound HTTP client.
//! - [`messaging`]: Kafka: the clients and the topic catalog's names, the
//!   outbox relay, the consumer loop with its inbox, dead letters.
//! - [`es`]: the event-sourcing core: events, upcasting, the event store,
//!   the aggregate executor over it, and the outbox rows written with it.
//! - [`work`]: durable work: the loop of every worker that takes its work
//!   from the database, the wakes commits send, work handed back.
//! - [`base`]: what every layer uses: the environment, the wall clock,
//!   failpoints, the metrics registry, the PostgreSQL pool and migrations.
//!
//! Each module is also re-exported here under its own name
//! (`omnisaga_runtime::http`), the path the services import it by; inside
//! the crate, paths name the layer. Test support (`testing`) sits behind the
//! `testing` feature, which only tests turn on.
//! The runtime never imports a service.

pub mod base;
pub mod boot;
pub mod edge;
pub mod es;
pub mod messaging;
#[cfg(feature = "testing")]
pub mod testing;
pub mod work;

pub use base::{clock, db, env, failpoint, metrics, wait};
pub use boot::{cli, config, logs, service, shutdown, telemetry};
pub use edge::{
    audit, auth, batch, cached, consumers, context, dead_letters, deprecation, health, http, http_client,
    input, limits, openapi, page, rebuilds, reconcile, routes, scrape, server, tls,
};
pub use es::{aggregate, event, outbox, projection, rebuild, store, upcast};
pub use messaging::{
    consumer::{self, dead_letter},
    kafka, probe, progress, relay,
};
pub use work::hand_back;

pub use es::event::{EventMeta, TraceContext};
/// The topic catalog (`schemas/topics.json`), its own crate so the CLI reads
/// it without the runtime.
pub use omnisaga_catalog as catalog;
pub use omnisaga_proto::v1 as pb;
