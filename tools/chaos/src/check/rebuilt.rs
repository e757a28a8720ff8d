//! I11: every read model is what its service's own events give. Once the
//! stack is quiet, each service verifies every projection it keeps
//! (`POST /v1/admin/rebuilds`, mode `verify`: folded anew from its event
//! store and compared with the live tables, changing nothing), and each
//! table that differs is a counterexample with the keys it names.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::Verdict;
use omnisaga_stack::{client::wait_for, Stack, SERVICES};

/// Most a verify may take on a quiet stack of a fault run's size.
const WITHIN: Duration = Duration::from_secs(120);

pub async fn read_models_rebuilt(stack: &Stack) -> Result<Verdict> {
    let http = stack.admin_client();
    let (mut checked, mut broken) = (0, Vec::new());
    for (service, _) in SERVICES {
        let run = verify(&http, &stack.admin_url(service))
            .await
            .with_context(|| format!("verifying {service}'s read models"))?;
        for projection in run["report"].as_array().into_iter().flatten() {
            for table in projection["tables"].as_array().into_iter().flatten() {
                checked += 1;
                let count = |k: &str| table[k].as_i64().unwrap_or(0);
                if count("missing") + count("extra") + count("different") > 0 {
                    broken.push(format!(
                        "{service} {}: {} missing, {} extra, {} different of {} rows ({})",
                        table["table"].as_str().unwrap_or("?"),
                        count("missing"),
                        count("extra"),
                        count("different"),
                        count("rebuilt_rows"),
                        table["examples"]
                            .as_array()
                            .map(|e| e.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
                            .unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(Verdict::new(
        "I11",
        "every service's read models are exactly what its own event store gives (each rebuilt and compared)",
        checked,
        broken,
    ))
}

/// Runs a verify of every projection at `admin_url` and waits for its end.
async fn verify(http: &reqwest::Client, admin_url: &str) -> Result<Value> {
    let resp = http
        .post(format!("{admin_url}/v1/admin/rebuilds"))
        .json(&json!({ "mode": "verify" }))
        .send()
        .await?;
    if resp.status() != 202 {
        bail!(
            "a verify was refused: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let id = resp.json::<Value>().await?["id"]
        .as_i64()
        .context("a run without an id")?;
    let url = format!("{admin_url}/v1/admin/rebuilds/{id}");
    let run = wait_for("the verify to end", WITHIN, || async {
        let run: Value = http.get(&url).send().await?.json().await?;
        Ok((run["status"] != "running").then_some(run))
    })
    .await?;
    if run["status"] != "finished" {
        bail!("the verify ended {}: {}", run["status"], run["error"]);
    }
    Ok(run)
}
