//! `omnisaga`: operator commands against a running stack. Service URLs come
//! from the environment (`ORDER_URL`, `PAYMENT_URL`, ... as in `.omnisaga/env`,
//! which is read when present) or the local defaults.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const USAGE: &str = "usage:
  omnisaga timeline <order-id>                 status and every event of an order, across services
  omnisaga dlq list <service> [--key <key>]    dead letters kept by a service (and its parked keys)
  omnisaga dlq show <service> <id>             one dead letter with headers and decoded payload
  omnisaga dlq replay <service> <key>          apply a parked key's dead letters in order, then unpark it

services: order, payment, warehouse, notification, analytics";

fn service_url(service: &str) -> Result<String> {
    let port = match service {
        "order" => 8080,
        "payment" => 8081,
        "warehouse" => 8082,
        "notification" => 8083,
        "analytics" => 8084,
        other => bail!("unknown service {other:?}\n\n{USAGE}"),
    };
    let var = format!("{}_URL", service.to_uppercase());
    if let Ok(url) = std::env::var(&var) {
        return Ok(url);
    }
    let from_file = std::fs::read_to_string(".omnisaga/env").ok().and_then(|env| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=")).map(str::to_owned))
    });
    Ok(from_file.unwrap_or_else(|| format!("http://127.0.0.1:{port}")))
}

async fn call(req: reqwest::RequestBuilder) -> Result<Value> {
    let resp = req
        .send()
        .await
        .context("the service did not answer (is the stack running?)")?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{status}: {}",
            body["message"].as_str().unwrap_or("request failed")
        );
    }
    Ok(body)
}

async fn run(args: &[String]) -> Result<()> {
    let http = reqwest::Client::new();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["timeline", id] => {
            let order = call(http.get(format!("{}/v1/orders/{id}", service_url("order")?))).await?;
            println!(
                "order {} ({})  status {}",
                order["order_number"].as_str().unwrap_or("?"),
                id,
                order["status"].as_str().unwrap_or("?")
            );
            if let Some(trace) = order["trace_id"].as_str() {
                println!("trace {trace}");
            }
            for e in order["timeline"].as_array().into_iter().flatten() {
                println!(
                    "  {}  {:<13} {}",
                    e["occurred_at"].as_str().unwrap_or(""),
                    e["service"].as_str().unwrap_or(""),
                    e["event_type"].as_str().unwrap_or("")
                );
            }
        }
        ["dlq", "list", service, rest @ ..] => {
            let mut url = format!("{}/v1/admin/dead-letters", service_url(service)?);
            if let ["--key", key] = rest {
                url.push_str(&format!("?key={key}"));
            } else if !rest.is_empty() {
                bail!("{USAGE}");
            }
            let body = call(http.get(url)).await?;
            let items = body["items"].as_array().cloned().unwrap_or_default();
            println!(
                "{} dead letter(s); parked keys: {}",
                items.len(),
                body["parked_keys"]
            );
            for d in items {
                println!(
                    "  #{:<5} key {}  {}[{}]@{}  {}  {}",
                    d["id"],
                    d["key"].as_str().unwrap_or(""),
                    d["topic"].as_str().unwrap_or(""),
                    d["partition"],
                    d["offset"],
                    d["event_type"].as_str().unwrap_or("?"),
                    d["error"].as_str().unwrap_or("")
                );
            }
        }
        ["dlq", "show", service, id] => {
            let body =
                call(http.get(format!("{}/v1/admin/dead-letters/{id}", service_url(service)?))).await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        ["dlq", "replay", service, key] => {
            let url = format!("{}/v1/admin/dead-letters/replay", service_url(service)?);
            let body = call(http.post(url).json(&json!({ "key": key }))).await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        _ => bail!("{USAGE}"),
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omnisaga: {e:#}");
            ExitCode::from(2)
        }
    }
}
