//! `omnisaga messages`: the chat messages the notification service gave up
//! after its channel refused them `NOTIFICATION_MAX_ATTEMPTS` times, through
//! its admin API (`/v1/admin/messages/...`): list them, retry one.

use anyhow::Result;
use serde_json::Value;

use crate::{
    cli::MessagesCommand,
    http,
    output::{self, text},
    settings::Settings,
};

const SERVICE: &str = "notification";

/// Runs a `messages` command. `retry` prints the service's JSON answer.
pub async fn run(command: &MessagesCommand, settings: &Settings, json: bool) -> Result<()> {
    let client = http::client(settings)?;
    let base = format!("{}/v1/admin/messages", settings.admin_url(SERVICE));
    match command {
        MessagesCommand::Dead { limit } => {
            let mut req = client.get(format!("{base}/dead"));
            if let Some(limit) = limit {
                req = req.query(&[("limit", limit)]);
            }
            let body = http::call(SERVICE, req).await?;
            if json {
                return output::print_json(&body);
            }
            print_dead(&body);
        }
        MessagesCommand::Retry { id } => {
            let body = http::call(SERVICE, client.post(format!("{base}/{id}/retry"))).await?;
            output::print_json(&body)?;
        }
    }
    Ok(())
}

fn print_dead(body: &Value) {
    let items = body["items"].as_array().cloned().unwrap_or_default();
    println!("{} dead message(s)", items.len());
    if items.is_empty() {
        return;
    }
    let mut table = output::table([
        "ID",
        "ORDER",
        "CUSTOMER",
        "TEMPLATE",
        "ATTEMPTS",
        "DEAD AT",
        "LAST ERROR",
    ]);
    for m in &items {
        table.add_row([
            text(&m["notification_id"]),
            text(&m["order_id"]),
            text(&m["customer_id"]),
            text(&m["template"]),
            text(&m["attempts"]),
            text(&m["dead_at"]),
            text(&m["last_error"]),
        ]);
    }
    println!("{table}");
}
