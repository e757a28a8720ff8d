//! What analysts and a CRM read from the analytics service: the summary of
//! the orders placed in a window (`summary`, `GET /v1/summary`), their
//! order facts as CSV (`export orders`, `GET /v1/exports/orders.csv`,
//! written as it streams) and a customer's payments (`customer payments`,
//! `GET /v1/customers/{id}/payments`, page after page). Each needs a token
//! with `analytics:read`.

use std::io::Write;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

pub mod args;

use args::{ExportArgs, PaymentsArgs, SummaryArgs};

use crate::{
    http,
    output::{self, text},
    settings::Settings,
};

/// Largest page of payments the API serves.
const PAGE: u32 = 100;

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Runs `summary`: the overall figures and a line per channel, or the
/// API's document as JSON.
pub async fn summary(args: &SummaryArgs, settings: &Settings, json: bool) -> Result<()> {
    let client = http::client(settings)?;
    let mut query = Vec::new();
    if let Some(t) = &args.from {
        query.push(("from", time(t)));
    }
    if let Some(t) = &args.to {
        query.push(("to", time(t)));
    }
    let url = format!("{}/v1/summary", settings.service_url("analytics"));
    let body = http::call("analytics", client.get(&url).query(&query)).await?;
    if json {
        return output::print_json(&body);
    }
    let window = match (&args.from, &args.to) {
        (None, None) => "every order".to_owned(),
        (from, to) => format!(
            "orders placed from {} to {}",
            from.as_ref().map_or("the first".to_owned(), time),
            to.as_ref().map_or("now".to_owned(), time)
        ),
    };
    println!("{window}");
    let mut table = output::table([
        "CHANNEL",
        "PLACED",
        "PAID",
        "READY",
        "SHIPPED",
        "CANCELLED",
        "PAYMENT SUCCESS",
        "SHIPPED P50 MS",
        "P95 MS",
    ]);
    let mut row = |name: &str, c: &Value, share: &Value, shipped: &Value| {
        table.add_row([
            name.to_owned(),
            text(&c["placed"]),
            text(&c["paid"]),
            text(&c["ready_for_shipment"]),
            text(&c["shipped"]),
            text(&c["cancelled"]),
            text(share),
            text(&shipped["p50"]),
            text(&shipped["p95"]),
        ]);
    };
    row(
        "all",
        &body["orders"],
        &body["payments"]["success_share"],
        &body["fulfilment_ms"]["placed_to_shipped"],
    );
    for c in body["channels"].as_array().into_iter().flatten() {
        row(
            c["channel"].as_str().unwrap_or("?"),
            &c["orders"],
            &c["payments"]["success_share"],
            &c["fulfilment_ms"]["placed_to_shipped"],
        );
    }
    println!("{table}");
    Ok(())
}

/// Runs `export orders`: the CSV as it arrives, to stdout or a file.
pub async fn export(args: &ExportArgs, settings: &Settings) -> Result<()> {
    let client = http::client(settings)?;
    let to = args.to.unwrap_or_else(Utc::now);
    let url = format!("{}/v1/exports/orders.csv", settings.service_url("analytics"));
    let req = client
        .get(&url)
        .query(&[("from", time(&args.from)), ("to", time(&to))])
        // The whole file, not one answer: as long as it takes.
        .timeout(std::time::Duration::from_secs(3600));
    let mut resp = req
        .send()
        .await
        .context("analytics did not answer (is the stack running? set ANALYTICS_URL)")?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        bail!(
            "analytics answered {status}: {}",
            body["message"].as_str().unwrap_or("request failed")
        );
    }
    let partial = args.output.as_ref().map(|f| f.with_extension("csv.partial"));
    let mut out: Box<dyn Write> = match &partial {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("Failed to create {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut rows = 0usize;
    while let Some(chunk) = resp
        .chunk()
        .await
        .context("the export was cut short: the file is incomplete")?
    {
        rows += chunk.iter().filter(|b| **b == b'\n').count();
        out.write_all(&chunk)?;
    }
    out.flush()?;
    drop(out);
    if let (Some(partial), Some(file)) = (partial, &args.output) {
        std::fs::rename(&partial, file)?;
        eprintln!(
            "{} order(s) written to {}",
            rows.saturating_sub(1),
            file.display()
        );
    }
    Ok(())
}

/// Runs `customer payments`: a table, or `{customer_id, items, next_cursor}` as JSON.
pub async fn payments(args: &PaymentsArgs, settings: &Settings, json: bool) -> Result<()> {
    let client = http::client(settings)?;
    let url = format!(
        "{}/v1/customers/{}/payments",
        settings.service_url("analytics"),
        urlencoding(&args.id)
    );
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", PAGE.min(args.limit - items.len() as u32).to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let body = http::call("analytics", client.get(&url).query(&query)).await?;
        items.extend(body["items"].as_array().into_iter().flatten().cloned());
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || items.len() as u32 >= args.limit {
            break;
        }
    }
    if json {
        return output::print_json(&json!({"customer_id": args.id, "items": items, "next_cursor": cursor}));
    }
    println!(
        "{} payment(s) of {}{}",
        items.len(),
        args.id,
        if cursor.is_some() {
            " (more: raise --limit)"
        } else {
            ""
        }
    );
    if items.is_empty() {
        return Ok(());
    }
    let mut table = output::table([
        "AT",
        "OUTCOME",
        "AMOUNT",
        "CURRENCY",
        "ORDER ID",
        "PAYMENT ID",
        "ATTEMPT",
        "REASON",
    ]);
    for p in &items {
        let amount = p["amount_minor_units"].as_i64().map_or("-".to_owned(), |m| {
            format!(
                "{}{}.{:02}",
                if m < 0 { "-" } else { "" },
                m.abs() / 100,
                m.abs() % 100
            )
        });
        table.add_row([
            text(&p["at"]),
            text(&p["outcome"]),
            amount,
            text(&p["currency"]),
            text(&p["order_id"]),
            text(&p["payment_id"]),
            text(&p["attempt"]),
            text(&p["reason"]),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// `s` as one path segment: everything but unreserved characters percent-encoded.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_id_is_one_path_segment() {
        assert_eq!(urlencoding("customer-1"), "customer-1");
        assert_eq!(urlencoding("a/b c?"), "a%2Fb%20c%3F");
    }
}
