//! Every service's API fuzzed from its generated OpenAPI document
//! (`schemas/openapi/<service>.json`) by schemathesis (PyPI; `make deps`
//! installs it) against a live stack: requests generated from the document,
//! valid and invalid, each listener (public, admin) with the operations it
//! serves; the order API for a customer's token and an operator's, the
//! others for an operator with every scope but `payment-methods:read`.
//! Every check schemathesis has runs (`--checks all`): every answer must be
//! one the document describes (status, content type, headers, body schema),
//! none a 5xx, what the document allows accepted and what it refuses
//! refused (a missing required header, a value outside its schema), and so
//! on. The client keeps under its rate limit, as a well-behaved one does:
//! the stack's limit is raised so schemathesis, which sends as fast as it
//! can, meets a 429 nowhere (the limit has tests of its own).
//! The seed is fixed, so a run is the same each time; the JUnit reports are
//! kept in target/test-artefacts/.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use futures::StreamExt as _;
use omnisaga_auth::Scope;
use omnisaga_e2e::{repo_root, Stack, StackOptions};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_answers_generated_requests_as_its_openapi_document_says() -> Result<()> {
    let options = StackOptions::for_test()
        .set_env("*", "HTTP_RATE_LIMIT_PER_SECOND", "100000")
        .set_env("*", "HTTP_RATE_LIMIT_BURST", "100000");
    let stack = Stack::start(options).await?;
    let result = fuzz(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

fn schemathesis() -> Result<PathBuf> {
    let home = std::env::var("HOME").context("HOME is not set")?;
    let bin = PathBuf::from(home).join(".cache/omnisaga/schemathesis/bin/schemathesis");
    ensure!(
        bin.exists(),
        "{} is missing: run `make deps` (infra/scripts/install-deps.sh installs it)",
        bin.display()
    );
    Ok(bin)
}

async fn fuzz(stack: &Stack) -> Result<()> {
    let bin = schemathesis()?;
    let root = repo_root()?;
    let reports = root.join("target/test-artefacts");
    std::fs::create_dir_all(&reports)?;
    let everything = stack.token(
        "fuzz-operator",
        &[
            Scope::Admin,
            Scope::AnalyticsRead,
            Scope::StockRead,
            Scope::OrdersRead,
            Scope::ReconcileRead,
            Scope::StockImport,
        ],
    );
    let callers = [
        ("order", "customer", stack.customer_token("fuzz-customer")),
        ("order", "operator", everything.clone()),
        ("payment", "operator", everything.clone()),
        ("warehouse", "operator", everything.clone()),
        ("notification", "operator", everything.clone()),
        ("analytics", "operator", everything),
    ];
    let split = std::env::temp_dir().join(format!("omnisaga-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&split)?;
    // One run per caller and listener: each listener fuzzed with the
    // operations it serves (an admin listener's name it in their `servers`).
    let mut runs = Vec::new();
    for (service, who, token) in callers {
        let whole: Value = serde_json::from_slice(&std::fs::read(
            root.join(format!("schemas/openapi/{service}.json")),
        )?)?;
        for (listener, url) in [
            ("public", stack.url(service)),
            ("admin", stack.admin_url(service)),
        ] {
            let Some(part) = operations_of(&whole, listener == "admin") else {
                continue;
            };
            let document = split.join(format!("{service}-{who}-{listener}.json"));
            std::fs::write(&document, serde_json::to_vec(&part)?)?;
            let who = format!("{service}-{who}-{listener}");
            runs.push(Run {
                who,
                document,
                url,
                token: token.clone(),
            });
        }
    }
    // A few side by side: each run waits on the stack's answers most of
    // its time. Every run's verdict is kept, the first failure reported.
    let verdicts: Vec<Result<()>> = futures::stream::iter(runs)
        .map(|run| schemathesis_run(&bin, &root, &reports, run))
        .buffer_unordered(SIDE_BY_SIDE)
        .collect()
        .await;
    verdicts.into_iter().collect()
}

/// How many schemathesis runs go at once.
const SIDE_BY_SIDE: usize = 3;

/// One schemathesis run: a caller's token against one listener.
struct Run {
    who: String,
    document: PathBuf,
    url: String,
    token: String,
}

async fn schemathesis_run(bin: &Path, root: &Path, reports: &Path, run: Run) -> Result<()> {
    let Run {
        who,
        document,
        url,
        token,
    } = run;
    let out = tokio::process::Command::new(bin)
        .arg("--config-file")
        .arg(root.join("e2e/schemathesis.toml"))
        .arg("run")
        .arg(&document)
        .args(["--url", &url])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        // Most cases generated for the catalog import (a CSV or NDJSON
        // text body under two patterned headers) cannot be sent and are
        // dropped; the health check that would then stop the run judges
        // the generator, not the API.
        .args(["--suppress-health-check", "filter_too_much"])
        .args(["--max-examples", "25", "--seed", "20261204"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(reports.join(format!("schemathesis-{who}.xml")))
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .with_context(|| format!("Failed to run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("[schemathesis as {who}]\n{}", tail(&stdout, 40));
    ensure!(
        out.status.success(),
        "schemathesis ({who}) found answers the document does not describe:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.contains("generated"),
        "schemathesis ({who}) generated no test case:\n{stdout}"
    );
    Ok(())
}

/// `document` with only the operations of the admin listener (`admin`) or
/// of the public one; `None` when there is none.
fn operations_of(document: &Value, admin: bool) -> Option<Value> {
    let mut part = document.clone();
    let paths = part["paths"].as_object_mut()?;
    for item in paths.values_mut() {
        if let Some(ops) = item.as_object_mut() {
            ops.retain(|_, op| op.get("servers").is_some() == admin);
        }
    }
    paths.retain(|_, item| item.as_object().is_some_and(|ops| !ops.is_empty()));
    (!paths.is_empty()).then_some(part)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
