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
        "NEXT DEADLINE",
    ]);
    for o in items {
        let next = o["deadlines"]
            .as_array()
            .and_then(|d| d.first())
            .map_or("-".to_owned(), |d| {
                format!("{} {}", text(&d["kind"]), text(&d["at"]))
            });
        table.add_row([
            text(&o["order_id"]),
            text(&o["order_number"]),
            text(&o["status"]),
            text(&o["channel"]),
            text(&o["customer_id"]),
            text(&o["placed_at"]),
            text(&o["updated_at"]),
            if o["stuck"] == true { "yes" } else { "no" }.to_owned(),
            next,
        ]);
    }
    println!("{table}");
}
