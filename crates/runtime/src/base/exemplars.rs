//! Exemplars of the latency histograms: for each bucket of each series, the
//! last observation that fell in it with the trace it belongs to, so a
//! spike on a graph leads to a trace that made it. The `prometheus` crate
//! keeps none, so they are kept here, beside its histograms, and written
//! into the OpenMetrics answer of `GET /metrics`
//! ([`crate::base::openmetrics`]); the classic text format has no place for
//! them.
//!
//! [`Exemplars::observe`] observes a value and keeps its exemplar:
//! `http_server_request_duration_seconds` does so for every request whose
//! trace is sampled (the request middleware, in the edge layer), and with
//! it the trace of an order's `POST /v1/orders` is the order's whole saga.

use std::{collections::HashMap, sync::Mutex};

use prometheus::{core::Collector, HistogramVec};

/// One observation with its trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    pub value: f64,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
}

/// The exemplars of one histogram family: its variable labels, sorted by
/// name, and per series (their values in that order) one slot per bucket,
/// `+Inf` last.
#[derive(Debug, Default)]
struct Family {
    labels: Vec<String>,
    series: HashMap<Vec<String>, Vec<Option<Exemplar>>>,
}

/// Every histogram's exemplars, by family name: histograms whose buckets
/// are all `buckets`.
#[derive(Debug, Default)]
pub struct Exemplars {
    buckets: Vec<f64>,
    families: Mutex<HashMap<String, Family>>,
}

impl Exemplars {
    /// For histograms of these buckets' upper bounds (`+Inf` besides).
    pub fn new(buckets: Vec<f64>) -> Self {
        Self {
            buckets,
            families: Mutex::default(),
        }
    }

    /// Observes `value` in `histogram`'s series of `label_values` and, with
    /// a `trace_id` (of a sampled trace: one the trace viewer gets), keeps
    /// it as the exemplar of the bucket it fell in.
    pub fn observe(
        &self,
        histogram: &HistogramVec,
        label_values: &[&str],
        value: f64,
        trace_id: Option<&str>,
    ) {
        histogram.with_label_values(label_values).observe(value);
        let Some(trace_id) = trace_id else {
            return;
        };
        let Some(desc) = histogram.desc().into_iter().next() else {
            return;
        };
        let buckets = &self.buckets;
        let bucket = buckets.iter().position(|b| value <= *b).unwrap_or(buckets.len());
        let mut named: Vec<(&str, &str)> = desc
            .variable_labels
            .iter()
            .map(String::as_str)
            .zip(label_values.iter().copied())
            .collect();
        named.sort_unstable();
        // The runtime's clock, as every record's time.
        let timestamp = crate::base::clock::now().timestamp_micros() as f64 / 1e6;
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(desc.fq_name.clone()).or_insert_with(|| Family {
            labels: named.iter().map(|(n, _)| (*n).to_owned()).collect(),
            series: HashMap::new(),
        });
        let key = named.iter().map(|(_, v)| (*v).to_owned()).collect();
        let slots = family
            .series
            .entry(key)
            .or_insert_with(|| vec![None; buckets.len() + 1]);
        if let Some(slot) = slots.get_mut(bucket) {
            *slot = Some(Exemplar {
                trace_id: trace_id.to_owned(),
                value,
                timestamp,
            });
        }
    }

    /// The exemplars of family `name`'s series with these label pairs (its
    /// variable labels among them; others, such as `service`, are passed
    /// over), one per bucket, `+Inf` last.
    pub fn of<'a>(
        &self,
        name: &str,
        pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Option<Vec<Option<Exemplar>>> {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.get(name)?;
        let key: Option<Vec<String>> = family
            .labels
            .iter()
            .map(|label| pairs.clone().find(|(n, _)| n == label).map(|(_, v)| v.to_owned()))
            .collect();
        family.series.get(&key?).cloned()
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{exponential_buckets, HistogramOpts};

    use super::*;

    #[test]
    fn each_bucket_keeps_its_last_sampled_observation() {
        let buckets = exponential_buckets(0.001, 2.0, 15).unwrap();
        let h = HistogramVec::new(
            HistogramOpts::new("t_seconds", "t").buckets(buckets.clone()),
            &["route", "method"],
        )
        .unwrap();
        let store = Exemplars::new(buckets);
        let (a, b) = (
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "5bf92f3577b34da6a3ce929d0e0e4737",
        );
        store.observe(&h, &["/v1/orders", "POST"], 0.0005, Some(a));
        store.observe(&h, &["/v1/orders", "POST"], 0.0007, Some(b));
        store.observe(&h, &["/v1/orders", "POST"], 0.3, Some(a));
        store.observe(&h, &["/v1/orders", "POST"], 100.0, None);
        assert_eq!(
            h.with_label_values(&["/v1/orders", "POST"]).get_sample_count(),
            4,
            "every value is observed"
        );
        // Pairs in any order, with a label the histogram does not have.
        let pairs = [("service", "order"), ("method", "POST"), ("route", "/v1/orders")];
        let slots = store.of("t_seconds", pairs.iter().copied()).unwrap();
        assert_eq!(slots.len(), 16);
        assert_eq!(
            slots[0].as_ref().map(|e| e.trace_id.as_str()),
            Some(b),
            "1 ms: the last"
        );
        assert_eq!(slots[0].as_ref().map(|e| e.value), Some(0.0007));
        assert_eq!(slots[9].as_ref().map(|e| e.trace_id.as_str()), Some(a), "0.512 s");
        assert!(slots[15].is_none(), "+Inf: no trace, no exemplar");
        assert!(store.of("t_seconds", [("route", "/x")].iter().copied()).is_none());
    }
}
