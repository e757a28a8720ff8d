//! Logs: JSON lines by default (one object per line with the span fields such
//! as `request.id` and `order.id`), or human-readable with `LOG_FORMAT=pretty`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(service: &'static str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "pretty");
    let registry = tracing_subscriber::registry().with(filter);
    if pretty {
        registry.with(fmt::layer().with_target(false)).init();
    } else {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true),
            )
            .init();
    }
    tracing::info!(service, "starting");
}
