//! The README's walk works: its "Watch an order go through" commands, run
//! as written by bash against a stack with the environment `make run`
//! writes to `.omnisaga/env`, every call answering 2xx, and the order placed
//! then ships as the README says.
//!
//! The block runs in two parts: up to the placement, whose answer gives the
//! order id, then the rest with `<order_id>` replaced by it. `curl` is
//! wrapped to fail on an error status (`--fail-with-body`).

use std::{process::Command, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use omnisaga_auth::Scope;
use omnisaga_e2e::{Stack, StackOptions, OPERATOR_SCOPES};
use serde_json::Value;

/// The `sh` block of the README's walk.
fn readme_walk() -> Result<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))?;
    let section = readme
        .split("\n## Watch an order go through\n")
        .nth(1)
        .context("README.md has no section \"Watch an order go through\"")?;
    let block = section
        .split("```sh\n")
        .nth(1)
        .context("no sh block in the README's walk")?;
    Ok(block.split("\n```").next().unwrap_or_default().to_owned())
}

/// What `make run` writes to `.omnisaga/env` that the walk uses.
fn env_of(stack: &Stack) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for s in &stack.services {
        env.push((format!("{}_URL", s.name.to_uppercase()), s.url.clone()));
        env.push((
            format!("{}_ADMIN_URL", s.name.to_uppercase()),
            s.admin_url.clone(),
        ));
    }
    env.push(("CUSTOMER_TOKEN".into(), stack.customer_token("customer-1")));
    env.push(("ADMIN_TOKEN".into(), stack.token("operator", &OPERATOR_SCOPES)));
    env.push((
        "ANALYST_TOKEN".into(),
        stack.token("analyst", &[Scope::AnalyticsRead]),
    ));
    env
}

/// Runs `script` with bash after a prelude that makes curl fail on an
/// error status; its standard output.
fn bash(script: &str, env: &[(String, String)]) -> Result<String> {
    let prelude = "set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 20 \"$@\"; echo; }\n";
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .context("run bash")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "the README's commands failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_walk_runs_against_a_stack_and_the_order_ships() -> Result<()> {
    let walk = readme_walk()?;
    let stack = Stack::start(StackOptions::for_test()).await?;
    let result = run_walk(&stack, &walk).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run_walk(stack: &Stack, walk: &str) -> Result<()> {
    let env = env_of(stack);
    let lines: Vec<&str> = walk
        .lines()
        .filter(|l| l.trim() != "source .omnisaga/env")
        .collect();
    let placed_at = lines
        .iter()
        .position(|l| l.starts_with("# =>"))
        .context("the walk shows no answer of the placement (`# =>`)")?;
    let placing = lines[..placed_at].join("\n");
    ensure!(
        placing.contains("POST $ORDER_URL/v1/orders"),
        "the walk places no order:\n{placing}"
    );
    let out = tokio::task::block_in_place(|| bash(&placing, &env))?;
    let answer: Value = out
        .lines()
        .rev()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v.get("order_id").is_some())
        })
        .with_context(|| format!("no placement answer in:\n{out}"))?;
    ensure!(answer["status"] == "PLACED", "placed: {answer}");
    let order_id = answer["order_id"].as_str().context("order_id")?.to_owned();

    // The order ships, as the README says, before its fulfilment is read.
    let http = stack.admin_client();
    let url = format!("{}/v1/orders/{order_id}", stack.url("order"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let order: Value = http.get(&url).send().await?.error_for_status()?.json().await?;
        if order["status"] == "SHIPPED" {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the order did not ship within 60 s: {order}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The first two lines define the headers the rest uses.
    let headers: Vec<&str> = lines[..placed_at]
        .iter()
        .copied()
        .filter(|l| l.starts_with("C="))
        .collect();
    let following = lines[placed_at + 1..].join("\n").replace("<order_id>", &order_id);
    let script = format!("{}\n{following}", headers.join("\n"));
    let out = tokio::task::block_in_place(|| bash(&script, &env))?;
    ensure!(
        out.contains("SHIPPED"),
        "the walk's reads do not show the order shipped:\n{out}"
    );
    Ok(())
}
