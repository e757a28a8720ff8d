//! `omnisaga dlq redrive`: after a fix, every parked key whose first dead
//! letter matches the filters is replayed, at one service or at each
//! (`all`), through `POST /v1/admin/dead-letters/redrive`, a page of keys
//! after another (`next_after`) until none is left. A service that does not
//! answer is reported and the others are still redriven; the command then
//! fails.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{
    cli::{RedriveArgs, Service},
    http,
    output::{self, text},
    settings::Settings,
};

/// What one service redrove: its keys and its held dead letters.
struct Redriven {
    service: Service,
    keys: Vec<Value>,
    held: Vec<Value>,
}

/// Runs `dlq redrive`.
pub async fn run(
    args: &RedriveArgs,
    settings: &Settings,
    client: &reqwest::Client,
    json: bool,
) -> Result<()> {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for service in args.service.services() {
        let what = if args.dry_run { "listing" } else { "redriving" };
        let spinner = output::spinner(format!("{what} dead letters at {}", service.name()), json);
        let result = at(service, args, settings, client).await;
        spinner.finish_and_clear();
        match result {
            Ok(r) => done.push(r),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if json {
        let services: Vec<Value> = done
            .iter()
            .map(|r| json!({ "service": r.service.name(), "keys": r.keys, "held": r.held }))
            .collect();
        output::print_json(&json!({ "dry_run": args.dry_run, "services": services, "failed": failed }))?;
    } else {
        print(&done, args.dry_run);
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

/// Redrives at `service`, page after page.
async fn at(
    service: Service,
    args: &RedriveArgs,
    settings: &Settings,
    client: &reqwest::Client,
) -> Result<Redriven> {
    let url = format!(
        "{}/v1/admin/dead-letters/redrive",
        settings.admin_url(service.name())
    );
    let mut out = Redriven {
        service,
        keys: Vec::new(),
        held: Vec::new(),
    };
    let mut after: Option<i64> = None;
    loop {
        let mut body = json!({ "dry_run": args.dry_run });
        if let Some(topic) = &args.topic {
            body["topic"] = topic.as_str().into();
        }
        if let Some(event_type) = &args.event_type {
            body["event_type"] = event_type.as_str().into();
        }
        if let Some(since) = args.since {
            body["from"] = since.to_rfc3339().into();
        }
        if let Some(until) = args.until {
            body["to"] = until.to_rfc3339().into();
        }
        if let Some(after) = after {
            body["after"] = after.into();
        }
        let answer = http::call(service.name(), client.post(&url).json(&body)).await?;
        out.keys
            .extend(answer["keys"].as_array().cloned().unwrap_or_default());
        if after.is_none() {
            out.held = answer["held"].as_array().cloned().unwrap_or_default();
        }
        match answer["next_after"].as_i64() {
            None => return Ok(out),
            Some(next) if Some(next) == after => {
                bail!("{} made no progress after dead letter {next}", service.name())
            }
            Some(next) => after = Some(next),
        }
    }
}

fn print(done: &[Redriven], dry_run: bool) {
    for r in done {
        println!(
            "{}: {} key(s) {}, {} dead letter(s) held",
            r.service.name(),
            r.keys.len(),
            if dry_run { "to replay" } else { "replayed" },
            r.held.len()
        );
        if !r.keys.is_empty() {
            let mut table = output::table(["CONSUMER", "KEY", "DEAD LETTERS", "FIRST", "OUTCOME"]);
            for k in &r.keys {
                let letters = k["letters"].as_array().cloned().unwrap_or_default();
                let ids: Vec<String> = letters.iter().map(|l| text(&l["id"])).collect();
                let first = letters.first().cloned().unwrap_or(Value::Null);
                table.add_row([
                    text(&k["consumer"]),
                    text(&k["key"]),
                    ids.join(","),
                    format!(
                        "{}[{}]@{} {}",
                        text(&first["topic"]),
                        text(&first["partition"]),
                        text(&first["offset"]),
                        text(&first["event_type"])
                    ),
                    outcome(&k["report"], letters.len()),
                ]);
            }
            println!("{table}");
        }
        for h in &r.held {
            let l = &h["letter"];
            println!(
                "held: #{} ({}) of {} at {}, behind #{}, which the filters leave out",
                text(&l["id"]),
                text(&l["event_type"]),
                text(&l["key"]),
                text(&l["consumer"]),
                text(&h["behind"])
            );
        }
    }
}

/// A key's replay in a few words; what a dry run would do.
fn outcome(report: &Value, letters: usize) -> String {
    if report.is_null() {
        return format!("would replay {letters}");
    }
    let mut out = format!(
        "replayed {}, {} left",
        text(&report["replayed"]),
        text(&report["remaining"])
    );
    if let Some(error) = report["error"].as_str() {
        out.push_str(": ");
        out.push_str(error);
    }
    out
}
