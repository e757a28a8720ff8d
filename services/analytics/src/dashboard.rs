//! `GET /dashboard`: one HTML page for people, refreshing itself: the
//! headline figures, orders per minute, the funnel by channel, the
//! fulfilment time distribution, the payment success share by channel and
//! the orders stuck at a stage. Charts are SVG drawn on the server
//! ([`charts`]); every figure is also in the page as text, with its exact
//! value in a `data-value` attribute.

mod charts;

use std::fmt::Write;

use axum::{extract::State, response::Response};
use chrono::{DateTime, Utc};
use omnisaga_runtime::{http::ApiError, page};
use sqlx::PgPool;

use crate::{
    config::Config,
    domain::{success_share, SUCCESS_SHARE_DEFINITION},
    store::{self, totals, ChannelCounts},
};
use charts::{bars, Scale, Series, PALETTE};

/// Minutes the orders-per-minute chart covers.
const MINUTES: i32 = 60;
/// Bins of the fulfilment time histogram.
const BINS: i32 = 12;
/// The stages an order can be stuck at, in saga order.
const STUCK_STAGES: [&str; 3] = ["placed", "paid", "ready_for_shipment"];

/// What the page shows, read in one go.
struct Figures {
    channels: Vec<ChannelCounts>,
    all: ChannelCounts,
    per_minute: Vec<(DateTime<Utc>, i64)>,
    /// The longest fulfilment in seconds, and the orders in each bin up to it.
    fulfilment: (f64, Vec<i64>),
    /// Orders stuck at each of [`STUCK_STAGES`].
    stuck: Vec<i64>,
    stuck_after_seconds: u64,
}

/// The dashboard
///
/// An HTML page with SVG charts (orders per minute, funnel by channel, fulfilment time, payment success share, stuck orders) that reloads itself. Aggregate figures only, so it needs no token.
#[utoipa::path(get, path = "/dashboard", tag = "analytics", security(()),
    responses((status = 200, description = "the page", body = String, content_type = "text/html")))]
pub async fn page(State(pool): State<PgPool>, State(config): State<Config>) -> Result<Response, ApiError> {
    let mut db = store::snapshot(&pool).await?;
    let channels = store::channel_counts(&mut db, &crate::window::Window::default()).await?;
    let stuck_after_seconds = config.stuck_after.as_secs();
    let stuck = store::stuck_orders(&mut db, stuck_after_seconds as f64).await?;
    let figures = Figures {
        all: totals(&channels),
        channels,
        per_minute: store::orders_per_minute(&mut db, MINUTES).await?,
        fulfilment: store::fulfilment_histogram(&mut db, BINS).await?,
        stuck: STUCK_STAGES
            .iter()
            .map(|stage| stuck.iter().find(|(s, _)| s == stage).map_or(0, |(_, n)| *n))
            .collect(),
        stuck_after_seconds,
    };
    let nonce = page::Nonce::new();
    let html = render(&figures, config.dashboard_refresh.as_secs(), &nonce).map_err(ApiError::internal)?;
    Ok(page::html(html, &nonce))
}

fn render(f: &Figures, refresh_seconds: u64, nonce: &page::Nonce) -> Result<String, String> {
    let mut page = String::with_capacity(64 * 1024);
    let share = success_share(f.all.authorized, f.all.declined);
    let placed_last_hour: i64 = f.per_minute.iter().map(|(_, n)| n).sum();
    let stuck: i64 = f.stuck.iter().sum();
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh_seconds}">
<title>omnisaga analytics</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 1em; }}
.figure {{ border: 1px solid #ccc; border-radius: 6px; padding: .6em 1em; min-width: 9em; }}
.figure .value {{ font-size: 1.8em; font-weight: bold; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }}
figcaption, .note {{ color: #555; font-size: .9em; max-width: 640px; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
th, td {{ border: 1px solid #ccc; padding: .3em .7em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
</style></head>
<body>
<h1>omnisaga analytics</h1>
<p class="note">As of {now} UTC; the page refreshes every {refresh_seconds} s.</p>
<div class="figures">
"#,
        now = omnisaga_runtime::clock::now().format("%Y-%m-%d %H:%M:%S"),
    );
    let stuck_label = format!("stuck for over {} s", f.stuck_after_seconds);
    for (name, label, n) in [
        ("placed", "orders placed", f.all.placed),
        ("placed_last_hour", "placed in the last hour", placed_last_hour),
        ("shipped", "shipped", f.all.shipped),
        ("cancelled", "cancelled", f.all.cancelled),
    ] {
        figure(&mut page, name, label, n as f64, count(n as f64));
    }
    match share {
        Some(v) => figure(&mut page, "success_share", "payment success share", v, percent(v)),
        None => figure_text(
            &mut page,
            "success_share",
            "payment success share",
            "no payment yet",
        ),
    }
    for (name, label, n) in [
        ("voided", "authorisations voided", f.all.voided),
        ("stuck", stuck_label.as_str(), stuck),
    ] {
        figure(&mut page, name, label, n as f64, count(n as f64));
    }
    let _ = write!(
        page,
        r#"</div>
<p class="note">Payment success share: {SUCCESS_SHARE_DEFINITION}</p>
<div class="charts">
"#
    );
    chart(
        &mut page,
        "orders_per_minute",
        &orders_per_minute(f)?,
        "Orders placed in each of the last 60 minutes (UTC).",
    );
    chart(
        &mut page,
        "funnel",
        &funnel(f)?,
        "Orders of each channel that reached each stage of the happy path.",
    );
    chart(
        &mut page,
        "fulfilment",
        &fulfilment(f)?,
        "Shipped orders by the time from placement to shipment.",
    );
    chart(
        &mut page,
        "success_share",
        &success_by_channel(f)?,
        SUCCESS_SHARE_DEFINITION,
    );
    chart(
        &mut page,
        "stuck",
        &stuck_by_stage(f)?,
        &format!(
            "Orders neither shipped nor cancelled that have been at their latest stage for over {} s.",
            f.stuck_after_seconds
        ),
    );
    page.push_str("</div>\n");
    channel_table(&mut page, f);
    // Counts the charts the browser laid out (the dashboard's browser test reads it).
    let _ = write!(
        page,
        "<script nonce=\"{}\">document.body.dataset.chartsDrawn = [...document.querySelectorAll('figure svg')]\
         .filter(s => s.getBBox().width > 0).length;</script>\n</body></html>\n",
        nonce.as_str()
    );
    Ok(page)
}

fn figure(page: &mut String, name: &str, label: &str, value: f64, shown: String) {
    let _ = writeln!(
        page,
        r#"<div class="figure"><div class="value" data-figure="{name}" data-value="{value}">{shown}</div>{label}</div>"#,
        label = escape(label),
    );
}

fn figure_text(page: &mut String, name: &str, label: &str, shown: &str) {
    let _ = writeln!(
        page,
        r#"<div class="figure"><div class="value" data-figure="{name}">{shown}</div>{label}</div>"#,
        label = escape(label),
    );
}

fn chart(page: &mut String, name: &str, svg: &str, caption: &str) {
    let _ = writeln!(
        page,
        r#"<figure data-chart="{name}">{svg}<figcaption>{caption}</figcaption></figure>"#,
        caption = escape(caption),
    );
}

fn orders_per_minute(f: &Figures) -> Result<String, String> {
    let labels: Vec<String> = f
        .per_minute
        .iter()
        .enumerate()
        .map(|(i, (minute, _))| {
            if i % 10 == 0 {
                minute.format("%H:%M").to_string()
            } else {
                String::new()
            }
        })
        .collect();
    let series = [Series {
        name: "orders",
        color: PALETTE[0],
        values: f.per_minute.iter().map(|(_, n)| *n as f64).collect(),
    }];
    bars("Orders per minute", &labels, &series, "orders", Scale::Count)
}

fn funnel(f: &Figures) -> Result<String, String> {
    let channels: Vec<String> = f.channels.iter().map(|c| c.channel.clone()).collect();
    let stage = |name, color, of: fn(&ChannelCounts) -> i64| Series {
        name,
        color,
        values: f.channels.iter().map(|c| of(c) as f64).collect(),
    };
    let series = [
        stage("placed", PALETTE[0], |c| c.placed),
        stage("paid", PALETTE[1], |c| c.paid),
        stage("ready for shipment", PALETTE[2], |c| c.ready_for_shipment),
        stage("shipped", PALETTE[3], |c| c.shipped),
    ];
    bars("Funnel by channel", &channels, &series, "orders", Scale::Count)
}

fn fulfilment(f: &Figures) -> Result<String, String> {
    let (longest, counts) = &f.fulfilment;
    let width = longest / counts.len().max(1) as f64;
    let labels: Vec<String> = (0..counts.len())
        .map(|i| {
            if i % 2 == 0 {
                duration(i as f64 * width)
            } else {
                String::new()
            }
        })
        .collect();
    let series = [Series {
        name: "orders",
        color: PALETTE[2],
        values: counts.iter().map(|n| *n as f64).collect(),
    }];
    bars(
        "Fulfilment time (placed to shipped)",
        &labels,
        &series,
        "orders",
        Scale::Count,
    )
}

fn success_by_channel(f: &Figures) -> Result<String, String> {
    // Only the channels with a payment answer have a share.
    let (channels, shares): (Vec<String>, Vec<f64>) = f
        .channels
        .iter()
        .filter_map(|c| success_share(c.authorized, c.declined).map(|share| (c.channel.clone(), share)))
        .unzip();
    let series = [Series {
        name: "success share",
        color: PALETTE[1],
        values: shares,
    }];
    bars(
        "Payment success share by channel",
        &channels,
        &series,
        "share",
        Scale::Share,
    )
}

fn stuck_by_stage(f: &Figures) -> Result<String, String> {
    let stages: Vec<String> = STUCK_STAGES.iter().map(|s| s.to_string()).collect();
    let series = [Series {
        name: "orders",
        color: PALETTE[3],
        values: f.stuck.iter().map(|n| *n as f64).collect(),
    }];
    bars("Stuck orders by stage", &stages, &series, "orders", Scale::Count)
}

/// The per-channel figures as a table.
fn channel_table(page: &mut String, f: &Figures) {
    page.push_str(
        "<table><tr><th>channel</th><th>placed</th><th>paid</th><th>ready for shipment</th>\
         <th>shipped</th><th>cancelled</th><th>payment success share</th><th>voided</th></tr>\n",
    );
    for c in f.channels.iter().chain(std::iter::once(&f.all)) {
        let name = escape(&c.channel);
        let _ = write!(page, "<tr><td>{name}</td>");
        for (figure, n) in [
            ("placed", c.placed),
            ("paid", c.paid),
            ("ready_for_shipment", c.ready_for_shipment),
            ("shipped", c.shipped),
            ("cancelled", c.cancelled),
        ] {
            let _ = write!(
                page,
                r#"<td data-figure="{figure}.{name}" data-value="{n}">{n}</td>"#
            );
        }
        match success_share(c.authorized, c.declined) {
            Some(v) => {
                let _ = write!(
                    page,
                    r#"<td data-figure="success_share.{name}" data-value="{v}">{}</td>"#,
                    percent(v)
                );
            }
            None => page.push_str("<td>-</td>"),
        }
        let _ = writeln!(page, "<td>{}</td></tr>", c.voided);
    }
    page.push_str("</table>\n");
}

/// Seconds as a short label: milliseconds under a second, minutes from two.
fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else {
        format!("{:.1} min", seconds / 60.0)
    }
}

fn count(v: f64) -> String {
    format!("{v:.0}")
}

fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_labelled_in_the_unit_that_reads_best() {
        assert_eq!(duration(0.0), "0 ms");
        assert_eq!(duration(0.0426), "43 ms");
        assert_eq!(duration(2.26), "2.3 s");
        assert_eq!(duration(300.0), "5.0 min");
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape(r#"<a href="x">&</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }
}
