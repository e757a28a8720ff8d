//! `omnisaga rebuild <service>`: a service's read models made again from
//! its own events, online (`POST /v1/admin/rebuilds`, then the run followed
//! at its Location until it ends), with `--verify` only compared.

use std::{process::ExitCode, time::Duration};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{
    cli::RebuildArgs,
    http,
    output::{self, text},
    settings::Settings,
};

/// How often a run's progress is asked for.
const POLL: Duration = Duration::from_millis(500);

/// Runs `rebuild`: 0 when every run finished (and, with --verify, found
/// the tables identical), 2 when a verify found a difference, an error when
/// a run failed or a service did not answer.
pub async fn run(args: &RebuildArgs, settings: &Settings, json: bool) -> Result<ExitCode> {
    let client = http::client(settings)?;
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    for service in args.service.services() {
        match at(service.name(), args, settings, &client, json).await {
            Ok(run) => runs.push(json!({ "service": service.name(), "run": run })),
            Err(e) => failed.push(format!("{}: {e:#}", service.name())),
        }
    }
    if json {
        output::print_json(&json!({ "runs": runs, "failed": failed }))?;
    } else {
        for r in &runs {
            print(r["service"].as_str().unwrap_or("?"), &r["run"]);
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    let differ = runs.iter().any(|r| r["run"]["identical"] == json!(false));
    Ok(if args.verify && differ {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Starts a run at `service` and follows it until it ends.
async fn at(
    service: &str,
    args: &RebuildArgs,
    settings: &Settings,
    client: &reqwest::Client,
    json: bool,
) -> Result<Value> {
    let base = settings.admin_url(service);
    let mut body = json!({ "mode": if args.verify { "verify" } else { "rebuild" } });
    if !args.projections.is_empty() {
        body["projections"] = json!(args.projections);
    }
    let started = http::call(
        service,
        client.post(format!("{base}/v1/admin/rebuilds")).json(&body),
    )
    .await?;
    let Some(id) = started["id"].as_i64() else {
        bail!("{service} answered a rebuild without its id: {started}");
    };
    let what = format!(
        "{} {service}",
        if args.verify { "verifying" } else { "rebuilding" }
    );
    let bar = output::bar(0, what, json);
    loop {
        let run = http::call(service, client.get(format!("{base}/v1/admin/rebuilds/{id}"))).await?;
        bar.set_length(run["events_total"].as_u64().unwrap_or(0).max(1));
        bar.set_position(run["events_done"].as_u64().unwrap_or(0));
        match run["status"].as_str() {
            Some("running") => tokio::time::sleep(POLL).await,
            Some("finished") => {
                bar.finish_and_clear();
                return Ok(run);
            }
            _ => {
                bar.finish_and_clear();
                bail!(
                    "rebuild {id} {}: {}",
                    text(&run["status"]),
                    run["error"]
                        .as_str()
                        .unwrap_or("its instance stopped; the live tables are as they were")
                );
            }
        }
    }
}

fn print(service: &str, run: &Value) {
    let verify = run["mode"] == json!("verify");
    let verdict = match (verify, run["identical"].as_bool()) {
        (true, Some(true)) => "identical to what the events give",
        (true, _) => "DIFFERENT from what the events give",
        (false, Some(true)) => "rebuilt; nothing differed",
        (false, _) => "rebuilt; the differences below were repaired",
    };
    println!(
        "{service}: {} event(s) folded, {verdict}",
        text(&run["events_done"])
    );
    let mut table = output::table([
        "PROJECTION",
        "TABLE",
        "LIVE",
        "REBUILT",
        "MISSING",
        "EXTRA",
        "DIFFERENT",
        "REPAIRED",
    ]);
    let mut examples = Vec::new();
    for p in run["report"].as_array().into_iter().flatten() {
        for t in p["tables"].as_array().into_iter().flatten() {
            table.add_row([
                text(&p["projection"]),
                text(&t["table"]),
                text(&t["live_rows"]),
                text(&t["rebuilt_rows"]),
                text(&t["missing"]),
                text(&t["extra"]),
                text(&t["different"]),
                text(&t["repaired"]),
            ]);
            for e in t["examples"].as_array().into_iter().flatten() {
                examples.push(format!("  {}: {}", text(&t["table"]), text(e)));
            }
        }
    }
    println!("{table}");
    if !examples.is_empty() {
        println!("for example:\n{}", examples.join("\n"));
    }
}
