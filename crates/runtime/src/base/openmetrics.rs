//! The registry in the OpenMetrics text format 1.0.0, with the latency
//! histograms' exemplars on their buckets ([`crate::base::exemplars`]):
//! what `GET /metrics` answers a scraper that asks for
//! `application/openmetrics-text` (Prometheus does, and keeps exemplars
//! with `--enable-feature=exemplar-storage`).
//!
//! The series are the classic format's, name for name: a counter
//! `x_total` is the family `x` whose sample is `x_total`, as OpenMetrics
//! wants; a counter not named `_total` (none is) would be written as
//! `unknown` so as to keep its name.

use std::fmt::Write as _;

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

use super::exemplars::{Exemplar, Exemplars};

/// The `Content-Type` of [`encode`]'s answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `families` in the OpenMetrics text format, ending with `# EOF`.
pub fn encode(families: &[MetricFamily], exemplars: &Exemplars) -> String {
    let mut out = String::with_capacity(64 * 1024);
    for mf in families {
        let name = mf.name();
        let kind = mf.get_field_type();
        let (family, kind_name) = match kind {
            MetricType::COUNTER => match name.strip_suffix("_total") {
                Some(family) => (family, "counter"),
                None => (name, "unknown"),
            },
            MetricType::GAUGE => (name, "gauge"),
            MetricType::HISTOGRAM => (name, "histogram"),
            MetricType::SUMMARY => (name, "summary"),
            MetricType::UNTYPED => (name, "unknown"),
        };
        if !mf.help().is_empty() {
            let _ = writeln!(out, "# HELP {family} {}", escape(mf.help()));
        }
        let _ = writeln!(out, "# TYPE {family} {kind_name}");
        for m in mf.get_metric() {
            match kind {
                MetricType::COUNTER => sample(&mut out, name, m, None, m.get_counter().get_value(), None),
                MetricType::GAUGE => sample(&mut out, name, m, None, m.get_gauge().get_value(), None),
                // The crate makes none (its own text encoder refuses them).
                MetricType::UNTYPED => {}
                MetricType::HISTOGRAM => histogram(&mut out, name, m, exemplars),
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let quantile = number(q.quantile());
                        sample(&mut out, name, m, Some(("quantile", &quantile)), q.value(), None);
                    }
                    sample(&mut out, &format!("{name}_sum"), m, None, s.sample_sum(), None);
                    let count = s.sample_count() as f64;
                    sample(&mut out, &format!("{name}_count"), m, None, count, None);
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A histogram's buckets (each with its exemplar, if any), `+Inf`
/// included, then its count and sum.
fn histogram(out: &mut String, name: &str, m: &Metric, exemplars: &Exemplars) {
    let h = m.get_histogram();
    let pairs = m.get_label().iter().map(|lp| (lp.name(), lp.value()));
    let kept = exemplars.of(name, pairs).unwrap_or_default();
    let bucket_name = format!("{name}_bucket");
    let mut inf_seen = false;
    let buckets = h.get_bucket();
    for (i, b) in buckets.iter().enumerate() {
        let upper = b.upper_bound();
        inf_seen |= upper == f64::INFINITY;
        let le = number(upper);
        let exemplar = kept.get(i).and_then(Option::as_ref);
        sample(
            out,
            &bucket_name,
            m,
            Some(("le", &le)),
            b.cumulative_count() as f64,
            exemplar,
        );
    }
    let count = h.get_sample_count() as f64;
    if !inf_seen {
        let exemplar = kept.get(buckets.len()).and_then(Option::as_ref);
        sample(out, &bucket_name, m, Some(("le", "+Inf")), count, exemplar);
    }
    sample(out, &format!("{name}_count"), m, None, count, None);
    sample(out, &format!("{name}_sum"), m, None, h.get_sample_sum(), None);
}

/// One sample line: `name{labels} value`, the metric's timestamp (in
/// seconds) and an exemplar when there are.
fn sample(
    out: &mut String,
    name: &str,
    m: &Metric,
    extra: Option<(&str, &str)>,
    value: f64,
    exemplar: Option<&Exemplar>,
) {
    out.push_str(name);
    labels(out, m.get_label(), extra);
    let _ = write!(out, " {}", number(value));
    if m.timestamp_ms() != 0 {
        let _ = write!(out, " {}", number(m.timestamp_ms() as f64 / 1000.0));
    }
    if let Some(e) = exemplar {
        let _ = write!(
            out,
            " # {{trace_id=\"{}\"}} {} {}",
            escape(&e.trace_id),
            number(e.value),
            number(e.timestamp)
        );
    }
    out.push('\n');
}

fn labels(out: &mut String, pairs: &[LabelPair], extra: Option<(&str, &str)>) {
    if pairs.is_empty() && extra.is_none() {
        return;
    }
    let mut separator = '{';
    let all = pairs.iter().map(|lp| (lp.name(), lp.value())).chain(extra);
    for (name, value) in all {
        let _ = write!(out, "{separator}{name}=\"{}\"", escape(value));
        separator = ',';
    }
    out.push('}');
}

/// A number as OpenMetrics writes it: `+Inf`, `-Inf`, `NaN` or Rust's
/// shortest round-trip form (`0.001`, `3`, the classic format's).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        v.to_string()
    }
}

/// A label value or help text with `\`, `"` and line feeds escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use prometheus::{
        exponential_buckets, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
        TextEncoder,
    };

    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// A registry like a service's: a `service` label on every series.
    fn registry() -> (Registry, HistogramVec, Exemplars) {
        let labels = [("service".to_owned(), "order".to_owned())].into_iter().collect();
        let registry = Registry::new_custom(None, Some(labels)).unwrap();
        let requests = IntCounterVec::new(
            Opts::new("http_server_requests_total", "HTTP requests"),
            &["route"],
        )
        .unwrap();
        requests.with_label_values(&["/v1/orders"]).inc_by(3);
        let gauge = IntGauge::new("omnisaga_outbox_backlog", "Rows \\ \"waiting\"\nnow").unwrap();
        gauge.set(7);
        let buckets = exponential_buckets(0.001, 2.0, 15).unwrap();
        let h = HistogramVec::new(
            HistogramOpts::new("t_seconds", "t").buckets(buckets.clone()),
            &["route"],
        )
        .unwrap();
        for c in [
            Box::new(requests) as Box<dyn prometheus::core::Collector>,
            Box::new(gauge),
            Box::new(h.clone()),
        ] {
            registry.register(c).unwrap();
        }
        (registry, h, Exemplars::new(buckets))
    }

    #[test]
    fn buckets_carry_their_exemplars_and_counters_their_family() {
        let (registry, h, exemplars) = registry();
        exemplars.observe(&h, &["/v1/orders"], 0.003, Some(TRACE));
        h.with_label_values(&["/v1/orders/{id}"]).observe(0.5);
        let text = encode(&registry.gather(), &exemplars);
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# TYPE http_server_requests counter",
            r#"http_server_requests_total{route="/v1/orders",service="order"} 3"#,
            "# TYPE omnisaga_outbox_backlog gauge",
            r#"# HELP omnisaga_outbox_backlog Rows \\ \"waiting\"\nnow"#,
            "# TYPE t_seconds histogram",
            r#"t_seconds_bucket{route="/v1/orders",service="order",le="0.002"} 0"#,
            r#"t_seconds_bucket{route="/v1/orders",service="order",le="+Inf"} 1"#,
            r#"t_seconds_bucket{route="/v1/orders/{id}",service="order",le="0.512"} 1"#,
            r#"t_seconds_count{route="/v1/orders",service="order"} 1"#,
            r#"t_seconds_sum{route="/v1/orders",service="order"} 0.003"#,
        ] {
            assert!(lines.contains(&want), "no line {want} in:\n{text}");
        }
        let with_exemplar: Vec<&&str> = lines.iter().filter(|l| l.contains(" # {")).collect();
        assert_eq!(with_exemplar.len(), 1, "one exemplar: {text}");
        let prefix = format!(
            r#"t_seconds_bucket{{route="/v1/orders",service="order",le="0.004"}} 1 # {{trace_id="{TRACE}"}} 0.003 "#
        );
        assert!(with_exemplar[0].starts_with(&prefix), "{}", with_exemplar[0]);
        assert_eq!(lines.last(), Some(&"# EOF"));
    }

    /// Every sample of the classic format, with its value, and nothing else.
    fn samples(text: &str) -> Vec<String> {
        let mut out: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.split(" # ").next().unwrap_or_default().to_owned())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_series_are_the_classic_formats_name_for_name() {
        let (registry, h, exemplars) = registry();
        h.with_label_values(&["/v1/orders"]).observe(0.02);
        let families = registry.gather();
        let classic = TextEncoder::new().encode_to_string(&families).unwrap();
        let open = encode(&families, &exemplars);
        assert_eq!(samples(&open), samples(&classic));
    }
}
