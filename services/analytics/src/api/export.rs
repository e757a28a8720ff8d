//! `GET /v1/exports/orders.csv?from=&to=`: the order facts (`fact_orders`)
//! of the orders placed in a window, as CSV (RFC 4180: a header row, CRLF
//! line ends, a field quoted when it holds a comma, a quote or a line
//! break), streamed a batch at a time from one snapshot as the client reads
//! it, never held whole. Its columns are documented in docs/analytics.md
//! ("CSV export of the order facts"). An error before the first batch is
//! the usual error envelope; one after it cuts the response short (the
//! chunked body never ends properly), so a truncated file is not taken for
//! a whole one.

use std::fmt::Write as _;

use axum::{
    body::{Body, Bytes},
    extract::{Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, SecondsFormat, Utc};
use omnisaga_runtime::{
    audit::PersonalRead,
    http::{ApiError, ErrorBody},
};
use serde::Deserialize;
use tokio::sync::{mpsc, Semaphore};
use utoipa::IntoParams;

use crate::{
    api::ApiState,
    store::{self, OrderFact},
    window,
};

/// The longest window one export covers.
pub const MAX_DAYS: i64 = 366;
/// Exports streaming at once: each holds a database connection while the
/// client reads, and the consumer draws on the same pool.
const MAX_RUNNING: usize = 2;
static RUNNING: Semaphore = Semaphore::const_new(MAX_RUNNING);

/// The header row: `fact_orders`' columns, in this order.
pub const COLUMNS: [&str; 14] = [
    "order_id",
    "customer_id",
    "channel",
    "placed_at",
    "paid_at",
    "ready_at",
    "shipped_at",
    "cancelled_at",
    "payment_outcome",
    "payment_failures",
    "payment_voids",
    "items",
    "total_minor_units",
    "currency",
];

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The orders placed at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z; a + in an offset is sent as %2B).
    from: DateTime<Utc>,
    /// The orders placed before this time (RFC 3339): after from, at most 366 days after it.
    to: DateTime<Utc>,
}

/// Order facts as CSV
///
/// The order facts (fact_orders) of the orders placed in the window [from, to), by placement time, as CSV with a header row (RFC 4180), streamed as it is read from one snapshot. Columns: order_id, customer_id, channel, placed_at, paid_at, ready_at, shipped_at, cancelled_at (RFC 3339 UTC, empty when not reached), payment_outcome, payment_failures, payment_voids, items, total_minor_units, currency (docs/analytics.md). Two exports stream at once; a third is answered 503 overloaded.
#[utoipa::path(get, path = "/v1/exports/orders.csv", tag = "analytics", params(ExportQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, description = "the order facts, a header row first", body = String, content_type = "text/csv"),
        (status = 422, description = "validation_failed (details.fields): to is not after from, or more than 366 days after it", body = ErrorBody),
    ))]
pub async fn orders_csv(
    State(s): State<ApiState>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let window = window::closed(q.from, q.to, chrono::Duration::days(MAX_DAYS))?;
    let Ok(permit) = RUNNING.try_acquire() else {
        return Ok(overloaded());
    };
    let mut tx = store::snapshot(&s.pool).await?;
    store::open_order_facts(&mut tx, &window).await?;
    // The first batch before the answer: a failure to read is still an error envelope.
    let mut batch = store::next_order_facts(&mut tx).await?;
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let _permit = permit;
        let mut chunk = String::new();
        header_row(&mut chunk);
        loop {
            let done = batch.is_empty();
            for fact in &batch {
                row(&mut chunk, fact);
            }
            if sender
                .send(Ok(Bytes::from(std::mem::take(&mut chunk))))
                .await
                .is_err()
                || done
            {
                // Done, or the client went away: the snapshot's transaction is rolled back.
                return;
            }
            batch = match store::next_order_facts(&mut tx).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "the order facts export failed part-way; its response is cut short");
                    let _ = sender.send(Err(std::io::Error::other(e))).await;
                    return;
                }
            };
        }
    });
    let chunks = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let filename = format!(
        "attachment; filename=\"orders-{}-{}.csv\"",
        q.from.format("%Y%m%dT%H%M%SZ"),
        q.to.format("%Y%m%dT%H%M%SZ")
    );
    let mut resp = Body::from_stream(chunks).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    if let Ok(v) = HeaderValue::from_str(&filename) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    // Every customer's orders leave the service: audited.
    Ok(PersonalRead::mark(resp))
}

/// 503 `overloaded` with `Retry-After`, as the runtime answers more requests than it takes.
fn overloaded() -> Response {
    let mut resp = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        format!("{MAX_RUNNING} exports are streaming already: try again when one is done"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// Appends the header row.
pub fn header_row(out: &mut String) {
    out.push_str(&COLUMNS.join(","));
    out.push_str("\r\n");
}

/// Appends `fact`'s row, its fields in [`COLUMNS`]' order.
pub fn row(out: &mut String, fact: &OrderFact) {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true));
    let number = |n: Option<i64>| n.map(|n| n.to_string());
    let fields = [
        Some(fact.order_id.to_string()),
        fact.customer_id.as_deref().map(inert),
        fact.channel.clone(),
        time(fact.placed_at),
        time(fact.paid_at),
        time(fact.ready_at),
        time(fact.shipped_at),
        time(fact.cancelled_at),
        Some(fact.payment_outcome.clone()),
        number(Some(fact.payment_failures.into())),
        number(Some(fact.payment_voids.into())),
        number(fact.items.map(i64::from)),
        number(fact.total_minor_units),
        fact.currency.clone(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field_into(out, field.as_deref().unwrap_or(""));
    }
    out.push_str("\r\n");
}

/// `text` as a spreadsheet shows it and never runs it: a customer id (the
/// identity provider's subject, not ours to choose) starting with `=`, `+`,
/// `-`, `@`, a tab or a carriage return would be read as a formula, so it
/// gets a leading `'` (OWASP's advice for CSV injection).
fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Appends `value` as one CSV field: quoted, its quotes doubled, when it
/// holds a comma, a quote or a line break (RFC 4180).
fn field_into(out: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        let _ = write!(out, "\"{}\"", value.replace('"', "\"\""));
    } else {
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact() -> OrderFact {
        OrderFact {
            order_id: uuid::Uuid::nil(),
            customer_id: Some("c-1".into()),
            channel: Some("web".into()),
            placed_at: Some("2026-12-01T10:00:00.000001Z".parse().unwrap()),
            paid_at: None,
            ready_at: None,
            shipped_at: None,
            cancelled_at: None,
            payment_outcome: "none".into(),
            payment_failures: 0,
            payment_voids: 0,
            items: Some(3),
            total_minor_units: Some(2100),
            currency: Some("EUR".into()),
        }
    }

    #[test]
    fn a_row_has_every_column_and_empty_fields_for_what_is_not_known() {
        let mut out = String::new();
        header_row(&mut out);
        row(&mut out, &fact());
        assert_eq!(
            out,
            "order_id,customer_id,channel,placed_at,paid_at,ready_at,shipped_at,cancelled_at,payment_outcome,\
             payment_failures,payment_voids,items,total_minor_units,currency\r\n\
             00000000-0000-0000-0000-000000000000,c-1,web,2026-12-01T10:00:00.000001Z,,,,,none,0,0,3,2100,EUR\r\n"
        );
    }

    #[test]
    fn a_customer_id_a_spreadsheet_would_run_as_a_formula_is_written_inert() {
        for (id, written) in [
            ("=HYPERLINK(\"http://x\")", "\"'=HYPERLINK(\"\"http://x\"\")\""),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("c-1", "c-1"),
        ] {
            let mut out = String::new();
            row(
                &mut out,
                &OrderFact {
                    customer_id: Some(id.into()),
                    ..fact()
                },
            );
            assert_eq!(out.split(',').nth(1), Some(written), "{out}");
        }
    }

    #[test]
    fn a_field_with_a_comma_quote_or_line_break_is_quoted_with_its_quotes_doubled() {
        for (value, written) in [
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\r\nlines", "\"two\r\nlines\""),
            ("plain", "plain"),
            ("", ""),
        ] {
            let mut out = String::new();
            field_into(&mut out, value);
            assert_eq!(out, written, "{value:?}");
        }
    }
}
