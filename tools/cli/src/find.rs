//! `omnisaga orders find`: every customer's orders through the order
//! service's admin API (`GET /v1/admin/orders`), filtered, newest first,
//! page after page up to `--limit`.

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::{
    cli::FindArgs,
    http,
    output::{self, text},
    settings::Settings,
};

/// Largest page the API serves.
const PAGE: u32 = 100;

/// Runs `orders find`: a table, or `{items, next_cursor}` as JSON.
pub async fn run(args: &FindArgs, settings: &Settings, json: bool) -> Result<()> {
    let client = http::client(settings)?;
    let url = format!("{}/v1/admin/orders", settings.admin_url("order"));
    let spinner = output::spinner("finding orders", json);
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let outcome = loop {
        let page = PAGE.min(args.limit - items.len() as u32);
        let mut query = query(args);
        query.push(("limit", page.to_string()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let body = match http::call("order", client.get(&url).query(&query)).await {
            Ok(body) => body,
            Err(e) => break Err(e),
        };
        items.extend(body["items"].as_array().into_iter().flatten().cloned());
        cursor = body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || items.len() as u32 >= args.limit {
            break Ok(());
        }
    };
    spinner.finish_and_clear();
    outcome?;
    if json {
        return output::print_json(&json!({ "items": items, "next_cursor": cursor }));
    }
    print_table(&items, cursor.is_some());
    Ok(())
}

/// The filters of `args` as the API's query parameters.
fn query(args: &FindArgs) -> Vec<(&'static str, String)> {
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut q = Vec::new();
    if let Some(s) = &args.status {
        q.push(("status", s.clone()));
    }
    if let Some(c) = &args.customer {
        q.push(("customer", c.clone()));
    }
    if let Some(c) = &args.channel {
        q.push(("channel", c.clone()));
    }
    if let Some(t) = &args.older_than {
        q.push(("placed_before", time(t)));
    }
    if let Some(t) = &args.since {
        q.push(("placed_after", time(t)));
    }
    if args.stuck {
        q.push(("stuck", "true".to_owned()));
    }
    if args.escalated {
        q.push(("escalated", "true".to_owned()));
    }
    q
}

fn print_table(items: &[Value], more: bool) {
    println!(
        "{} order(s){}",
        items.len(),
        if more { " (more: raise --limit)" } else { "" }
    );
    if items.is_empty() {
        return;
    }
    let mut table = output::table([
        "ORDER ID",
        "NUMBER",
        "STATUS",
        "CHANNEL",
        "CUSTOMER",
        "PLACED",
        "CHANGED",
        "STUCK",
        "ESCALATED",
        "DEADLINE",
    ]);
    for o in items {
        let next = next_deadline(o, Utc::now());
        table.add_row([
            text(&o["order_id"]),
            text(&o["order_number"]),
            text(&o["status"]),
            text(&o["channel"]),
            text(&o["customer_id"]),
            text(&o["placed_at"]),
            text(&o["updated_at"]),
            if o["stuck"] == true { "yes" } else { "no" }.to_owned(),
            if o["escalated"] == true { "yes" } else { "no" }.to_owned(),
            next,
        ]);
    }
    println!("{table}");
}

/// The order's next deadline as `kind at`, else its last one passed, marked
/// so; `-` for a finished order.
fn next_deadline(order: &Value, now: DateTime<Utc>) -> String {
    let deadlines: Vec<(&Value, Option<DateTime<Utc>>)> = order["deadlines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let at = d["at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            (d, at.map(|t| t.with_timezone(&Utc)))
        })
        .collect();
    let show = |d: &Value, passed: bool| {
        format!(
            "{} {}{}",
            text(&d["kind"]),
            text(&d["at"]),
            if passed { " (passed)" } else { "" }
        )
    };
    if let Some((d, _)) = deadlines.iter().find(|(_, at)| at.is_some_and(|t| t > now)) {
        return show(d, false);
    }
    deadlines.last().map_or("-".to_owned(), |(d, _)| show(d, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_shown_is_the_next_else_the_last_passed() {
        let now: DateTime<Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        let order = json!({"deadlines": [
            {"kind": "stuck", "at": "2026-01-01T11:00:00Z"},
            {"kind": "payment_delay_notice", "at": "2026-01-01T13:00:00Z"},
        ]});
        assert_eq!(
            next_deadline(&order, now),
            "payment_delay_notice 2026-01-01T13:00:00Z"
        );
        let passed = json!({"deadlines": [{"kind": "stuck", "at": "2026-01-01T11:00:00Z"}]});
        assert_eq!(next_deadline(&passed, now), "stuck 2026-01-01T11:00:00Z (passed)");
        assert_eq!(next_deadline(&json!({"deadlines": []}), now), "-");
    }
}
