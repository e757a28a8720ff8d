//! Logs and traces. Logs are JSON lines by default (flat, with the fields of
//! their spans and the `trace_id` and `span_id`: see [`crate::boot::logs`]), or human-readable with
//! `LOG_FORMAT=pretty`. Spans go to OpenTelemetry: W3C trace context is
//! always propagated; spans are exported by OTLP/gRPC when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set, with the SDK's standard variables (`OTEL_SERVICE_NAME`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, ...) honoured.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
    Resource,
};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Counts the spans of every batch the exporter failed to deliver in
/// `omnisaga_spans_dropped_total` (spans the SDK drops on a full queue are
/// only logged by it).
#[derive(Debug)]
struct Counted<E>(E);

static DROPPED: std::sync::LazyLock<crate::base::metrics::Counters> = std::sync::LazyLock::new(|| {
    crate::base::metrics::counter_vec(
        "omnisaga_spans_dropped_total",
        "Spans that could not be exported",
        &[],
    )
});

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let spans = batch.len() as u64;
        let exported = self.0.export(batch);
        async move {
            let result = exported.await;
            if result.is_err() {
                DROPPED.with_label_values::<&str>(&[]).inc_by(spans);
            }
            result
        }
    }
    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

/// Keeps the tracer provider; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Installs logging and tracing. Call once, first thing in `main`, inside
/// the Tokio runtime (the gRPC exporter needs it).
pub fn init(service: &'static str) -> Telemetry {
    // Metrics first: the exporter's counter registers in the service's registry.
    crate::base::metrics::init(service);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,rdkafka=warn"));
    let service_name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
    // service.instance.id tells replicas apart (and the Jaeger view keys processes by it).
    let instance = format!("{service}-{}", uuid::Uuid::new_v4().simple());
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attribute(opentelemetry::KeyValue::new("service.instance.id", instance))
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    let exporting = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|e| !e.is_empty()));
    let mut export_error = None;
    // The series exists from the start, so `increase()` sees the first loss.
    DROPPED.with_label_values::<&str>(&[]).inc_by(0);
    if exporting {
        match otlp_exporter() {
            Ok(exporter) => builder = builder.with_batch_exporter(Counted(exporter)),
            Err(e) => export_error = Some(format!("{e:#}")),
        }
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let pretty = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "pretty");
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    if pretty {
        registry.with(fmt::layer().with_target(false)).init();
    } else {
        registry
            .with(
                fmt::layer()
                    .fmt_fields(fmt::format::JsonFields::new())
                    .event_format(crate::boot::logs::FlatJson),
            )
            .init();
    }
    if let Some(e) = export_error {
        tracing::error!(error = %e, "trace export disabled: the OTLP exporter could not be built");
    }
    tracing::info!(service, exporting, "starting");
    Telemetry { provider }
}

impl Telemetry {
    /// Flushes spans not yet exported. Call after the service stopped.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace exporter did not flush cleanly");
        }
    }
}

/// The OTLP/gRPC span exporter the `OTEL_EXPORTER_OTLP_*` variables
/// describe. An `https://` endpoint is checked against the system's CAs, or
/// against the PEM file `OTEL_EXPORTER_OTLP_CERTIFICATE` names (the
/// specification's variable, which the exporter does not read itself).
fn otlp_exporter() -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    use anyhow::Context as _;
    use opentelemetry_otlp::{
        tonic_types::transport::{Certificate, ClientTlsConfig},
        WithTonicConfig as _,
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    if let Some(path) = std::env::var("OTEL_EXPORTER_OTLP_CERTIFICATE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        let pem = std::fs::read(&path)
            .with_context(|| format!("OTEL_EXPORTER_OTLP_CERTIFICATE: Failed to read {path}"))?;
        builder = builder.with_tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)));
    }
    Ok(builder.build()?)
}
