//! `omnisaga dlq`: a service's dead letters through its admin API
//! (`/v1/admin/dead-letters`): list them, show one, replay a parked key,
//! discard one for good, skip one (its event marked applied), and redrive
//! in bulk ([`crate::redrive`]).

use anyhow::Result;
use serde_json::{json, Value};

use crate::{
    cli::{DlqCommand, Service},
    http,
    output::{self, text},
    settings::Settings,
};

/// Runs a `dlq` command. `show`, `replay`, `discard` and `skip` print the service's JSON answer.
pub async fn run(command: &DlqCommand, settings: &Settings, json: bool) -> Result<()> {
    let client = http::client(settings)?;
    let base = |service: Service| format!("{}/v1/admin/dead-letters", settings.admin_url(service.name()));
    match command {
        DlqCommand::List { service, key } => {
            let mut req = client.get(base(*service));
            if let Some(key) = key {
                req = req.query(&[("key", key)]);
            }
            let body = http::call(service.name(), req).await?;
            if json {
                return output::print_json(&body);
            }
            print_list(&body);
        }
        DlqCommand::Show { service, id } => {
            let body = http::call(service.name(), client.get(format!("{}/{id}", base(*service)))).await?;
            output::print_json(&body)?;
        }
        DlqCommand::Replay { service, key } => {
            let spinner = output::spinner(format!("replaying {key} at {}", service.name()), json);
            let req = client
                .post(format!("{}/replay", base(*service)))
                .json(&json!({ "key": key }));
            let body = http::call(service.name(), req).await;
            spinner.finish_and_clear();
            output::print_json(&body?)?;
        }
        DlqCommand::Discard { service, id, reason } => {
            let spinner = output::spinner(format!("discarding {id} at {}", service.name()), json);
            let req = client
                .post(format!("{}/{id}/discard", base(*service)))
                .json(&json!({ "reason": reason }));
            let body = http::call(service.name(), req).await;
            spinner.finish_and_clear();
            output::print_json(&body?)?;
        }
        DlqCommand::Skip { service, id, reason } => {
            let spinner = output::spinner(format!("skipping {id} at {}", service.name()), json);
            let req = client
                .post(format!("{}/{id}/skip", base(*service)))
                .json(&json!({ "reason": reason }));
            let body = http::call(service.name(), req).await;
            spinner.finish_and_clear();
            output::print_json(&body?)?;
        }
        DlqCommand::Redrive(args) => return crate::redrive::run(args, settings, &client, json).await,
    }
    Ok(())
}

fn print_list(body: &Value) {
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let parked: Vec<String> = body["parked_keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    println!(
        "{} dead letter(s); parked keys: {}",
        items.len(),
        if parked.is_empty() {
            "none".to_owned()
        } else {
            parked.join(", ")
        }
    );
    if items.is_empty() {
        return;
    }
    let mut table = output::table(["ID", "KEY", "SOURCE", "EVENT TYPE", "ATTEMPTS", "ERROR"]);
    for d in &items {
        table.add_row([
            text(&d["id"]),
            text(&d["key"]),
            format!(
                "{}[{}]@{}",
                text(&d["topic"]),
                text(&d["partition"]),
                text(&d["offset"])
            ),
            text(&d["event_type"]),
            text(&d["attempts"]),
            text(&d["error"]),
        ]);
    }
    println!("{table}");
}
