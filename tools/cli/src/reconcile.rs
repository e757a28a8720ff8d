//! `omnisaga reconcile`: the saga's invariants checked on the live stack
//! over a window of time (docs/reconcile.md). The order service reports
//! its own counterexamples and the orders shipped in the window; payment,
//! warehouse and notification then check theirs and those orders, each in
//! one read-only snapshot of its database (`POST /v1/admin/reconcile` on
//! the admin listeners). Prints every counterexample with its order; with
//! `--push`, sends the counts to a Prometheus Pushgateway, where the
//! `ReconcileCounterexamples` alert reads them.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use omnisaga_runtime::reconcile::{ReconcileReport, ReconcileRequest, INVARIANTS};
use serde::Serialize;

use crate::{cli::ReconcileArgs, http, output, settings::Settings};

/// The exit code when counterexamples were found (1 is "could not check").
pub const BROKEN: u8 = 2;

/// The services that check, the order service first.
const CHECKERS: [&str; 4] = ["order", "payment", "warehouse", "notification"];

/// One invariant as one service checked it.
#[derive(Debug, Serialize)]
struct Verdict {
    invariant: &'static str,
    service: String,
    rule: &'static str,
    checked: u64,
    counterexamples: usize,
}

/// One counterexample, with the service that found it.
#[derive(Debug, Serialize)]
struct Found {
    invariant: String,
    service: String,
    order_id: Option<String>,
    subject: String,
    detail: String,
}

/// The whole result.
#[derive(Debug, Serialize)]
struct Reconciliation {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    /// True when no invariant has a counterexample.
    holds: bool,
    /// The orders shipped in the window that were checked.
    shipped_checked: usize,
    /// More orders shipped in the window than were checked (narrow it).
    truncated: bool,
    verdicts: Vec<Verdict>,
    counterexamples: Vec<Found>,
}

/// Runs `reconcile`; exits [`BROKEN`] when an invariant has a counterexample.
pub async fn run(args: &ReconcileArgs, settings: &Settings, json: bool) -> Result<ExitCode> {
    let window = ReconcileRequest {
        since: args.since,
        until: args.until,
        shipped: vec![],
    };
    if let Some(problem) = window.problem() {
        anyhow::bail!("--since {} --until {}: {problem}", args.since, args.until);
    }
    let spinner = output::spinner("reconciling", json);
    let reports = fetch(settings, window).await;
    spinner.finish_and_clear();
    let result = judge(args, reports?);
    if result.truncated {
        eprintln!(
            "omnisaga: more orders shipped in the window than one check carries: only the first {} were checked; narrow the window",
            result.shipped_checked
        );
    }
    if json {
        output::print_json(&result)?;
    } else {
        print(&result);
    }
    if let Some(url) = &args.push {
        push(settings, url, &result).await?;
    }
    Ok(if result.holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(BROKEN)
    })
}

/// Asks the order service, then the others with the orders it shipped.
async fn fetch(settings: &Settings, window: ReconcileRequest) -> Result<Vec<ReconcileReport>> {
    let client = http::client(settings)?;
    let ask = |service: &'static str, body: ReconcileRequest| {
        let req = client
            .post(format!("{}/v1/admin/reconcile", settings.admin_url(service)))
            .json(&body);
        async move {
            let body = http::call(service, req).await?;
            serde_json::from_value::<ReconcileReport>(body)
                .with_context(|| format!("{service} answered a report this omnisaga does not read"))
        }
    };
    let order = ask(CHECKERS[0], window.clone()).await?;
    let next = ReconcileRequest {
        shipped: order.shipped.clone(),
        ..window
    };
    let (payment, warehouse, notification) = tokio::join!(
        ask(CHECKERS[1], next.clone()),
        ask(CHECKERS[2], next.clone()),
        ask(CHECKERS[3], next),
    );
    Ok(vec![order, payment?, warehouse?, notification?])
}

/// Every (invariant, service) pair the checkers decide, and its rule.
fn pairs() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    INVARIANTS
        .into_iter()
        .flat_map(|(name, services, rule)| services.split(", ").map(move |s| (name, s, rule)))
}

fn judge(args: &ReconcileArgs, reports: Vec<ReconcileReport>) -> Reconciliation {
    let order = reports.iter().find(|r| r.service == "order");
    let verdicts = pairs()
        .map(|(invariant, service, rule)| {
            let report = reports.iter().find(|r| r.service == service);
            Verdict {
                invariant,
                service: service.to_owned(),
                rule,
                checked: report
                    .and_then(|r| r.checked.get(invariant))
                    .copied()
                    .unwrap_or(0),
                counterexamples: report.map_or(0, |r| {
                    r.counterexamples
                        .iter()
                        .filter(|c| c.invariant == invariant)
                        .count()
                }),
            }
        })
        .collect();
    let counterexamples: Vec<Found> = reports
        .iter()
        .flat_map(|r| {
            r.counterexamples.iter().map(|c| Found {
                invariant: c.invariant.clone(),
                service: r.service.clone(),
                order_id: c.order_id.clone(),
                subject: c.subject.clone(),
                detail: c.detail.clone(),
            })
        })
        .collect();
    Reconciliation {
        since: args.since,
        until: args.until,
        holds: counterexamples.is_empty(),
        shipped_checked: order.map_or(0, |o| o.shipped.len()),
        truncated: order.is_some_and(|o| o.truncated),
        verdicts,
        counterexamples,
    }
}

fn print(r: &Reconciliation) {
    println!(
        "window {} .. {}: {} orders shipped in it checked",
        r.since.to_rfc3339(),
        r.until.to_rfc3339(),
        r.shipped_checked
    );
    let mut table = output::table(["INVARIANT", "SERVICE", "CHECKED", "COUNTEREXAMPLES"]);
    for v in &r.verdicts {
        table.add_row([
            v.invariant.to_owned(),
            v.service.clone(),
            v.checked.to_string(),
            v.counterexamples.to_string(),
        ]);
    }
    println!("{table}");
    if r.holds {
        println!("every invariant holds");
        return;
    }
    let mut table = output::table(["INVARIANT", "ORDER", "SUBJECT", "WHAT DIFFERS"]);
    for c in &r.counterexamples {
        table.add_row([
            c.invariant.clone(),
            c.order_id.clone().unwrap_or_else(|| "-".to_owned()),
            c.subject.clone(),
            c.detail.clone(),
        ]);
    }
    println!("{table}");
    println!("{} counterexamples", r.counterexamples.len());
}

/// The result in the Prometheus text format, as the Pushgateway takes it.
fn metrics(r: &Reconciliation, now: DateTime<Utc>) -> String {
    let mut text = String::from(
        "# HELP omnisaga_reconcile_counterexamples Counterexamples of each invariant the last reconciliation found, by the service that checked it.\n\
         # TYPE omnisaga_reconcile_counterexamples gauge\n",
    );
    for v in &r.verdicts {
        text.push_str(&format!(
            "omnisaga_reconcile_counterexamples{{invariant=\"{}\",service=\"{}\"}} {}\n",
            v.invariant, v.service, v.counterexamples
        ));
    }
    text.push_str(
        "# HELP omnisaga_reconcile_checked Things (orders, rows, SKUs) the last reconciliation checked, per invariant and service.\n\
         # TYPE omnisaga_reconcile_checked gauge\n",
    );
    for v in &r.verdicts {
        text.push_str(&format!(
            "omnisaga_reconcile_checked{{invariant=\"{}\",service=\"{}\"}} {}\n",
            v.invariant, v.service, v.checked
        ));
    }
    text.push_str(&format!(
        "# HELP omnisaga_reconcile_window_end_timestamp_seconds The end of the last reconciliation's window.\n\
         # TYPE omnisaga_reconcile_window_end_timestamp_seconds gauge\n\
         omnisaga_reconcile_window_end_timestamp_seconds {}\n\
         # HELP omnisaga_reconcile_last_success_timestamp_seconds When a reconciliation last ran to its end, whatever it found.\n\
         # TYPE omnisaga_reconcile_last_success_timestamp_seconds gauge\n\
         omnisaga_reconcile_last_success_timestamp_seconds {}\n",
        r.until.timestamp(),
        now.timestamp()
    ));
    text
}

/// Replaces the job's group at the Pushgateway at `url` with this result
/// (PUT: a gauge of an earlier run does not linger). The token is not sent.
async fn push(settings: &Settings, url: &str, r: &Reconciliation) -> Result<()> {
    let client = settings
        .http_trust()?
        .builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("Failed to build the HTTP client")?;
    let target = format!("{}/metrics/job/omnisaga_reconcile", url.trim_end_matches('/'));
    let resp = client
        .put(&target)
        .header(
            reqwest::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(metrics(r, Utc::now()))
        .send()
        .await
        .with_context(|| format!("the Pushgateway at {target} did not answer"))?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the Pushgateway at {target} answered {}",
        resp.status()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use omnisaga_runtime::reconcile::Counterexample;

    use super::*;

    fn args() -> ReconcileArgs {
        ReconcileArgs {
            since: "2026-01-01T00:00:00Z".parse().unwrap(),
            until: "2026-01-01T01:00:00Z".parse().unwrap(),
            push: None,
        }
    }

    #[test]
    fn every_pair_is_reported_and_pushed_even_with_no_counterexample() {
        let mut payment = ReconcileReport::new("payment");
        payment.checked("shipped_paid", 3);
        payment.counterexamples.push(Counterexample {
            invariant: "shipped_paid".to_owned(),
            order_id: Some("o-1".to_owned()),
            subject: "order o-1".to_owned(),
            detail: "shipped with 0 standing authorisations".to_owned(),
        });
        let r = judge(&args(), vec![ReconcileReport::new("order"), payment]);
        assert!(!r.holds);
        assert_eq!(r.counterexamples[0].service, "payment");
        let text = metrics(&r, "2026-01-01T01:05:00Z".parse().unwrap());
        assert!(text.contains(
            "omnisaga_reconcile_counterexamples{invariant=\"shipped_paid\",service=\"payment\"} 1\n"
        ));
        assert!(
            text.contains("omnisaga_reconcile_checked{invariant=\"shipped_paid\",service=\"payment\"} 3\n")
        );
        for service in CHECKERS {
            assert!(
                text.contains(&format!(
                    "omnisaga_reconcile_counterexamples{{invariant=\"outbox_published\",service=\"{service}\"}} 0\n"
                )),
                "{text}"
            );
        }
        assert!(text.contains("omnisaga_reconcile_last_success_timestamp_seconds 1767229500\n"));
    }
}
