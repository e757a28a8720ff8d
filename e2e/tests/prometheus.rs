//! Metrics where an SRE looks: the stack's Prometheus (what `make run`
//! starts) scrapes every instance, up, in OpenMetrics, with the project's
//! alert rules loaded and evaluating, and the latency histogram's
//! exemplar of an order's `POST /v1/orders` names the order's trace, which
//! the trace viewer has; the exemplars page (`/user/exemplars.html`, in
//! headless Chromium) links it to `/trace/<id>`, and its screenshot is kept
//! as a test artefact. The dashboards and the alert rules query series the
//! code defines (no stack).

use std::{collections::BTreeSet, path::PathBuf, process::Stdio, time::Duration};

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    repo_root, Prometheus, Stack, StackOptions, SERVICES,
};
use serde_json::Value;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_instance_runs_the_rules_and_an_exemplar_leads_to_the_orders_trace(
) -> Result<()> {
    let stack = Stack::start(StackOptions::for_test().warehouse_ms(20, 10, 20)).await?;
    let result = match Prometheus::start(&stack, Duration::from_secs(1)).await {
        Ok(prometheus) => {
            let result = check(&stack, &prometheus).await;
            prometheus.stop().await;
            result
        }
        Err(e) => Err(e),
    };
    stack.finish(result.is_ok()).await?;
    result
}

async fn check(stack: &Stack, prometheus: &Prometheus) -> Result<()> {
    let http = reqwest::Client::new();
    let api = |path: String| {
        let http = http.clone();
        let url = format!("{}/api/v1/{path}", prometheus.url);
        async move {
            let body: Value = http.get(&url).send().await?.json().await?;
            ensure!(body["status"] == "success", "{url}: {body}");
            Ok::<_, anyhow::Error>(body["data"].clone())
        }
    };

    // Every instance scraped and up, in OpenMetrics (the format that
    // carries exemplars).
    wait_for("every instance to be up", Duration::from_secs(60), || async {
        let targets = api("targets?state=active".into()).await?;
        let targets = targets["activeTargets"].as_array().cloned().unwrap_or_default();
        let up: BTreeSet<String> = targets
            .iter()
            .filter(|t| t["health"] == "up" && t["lastError"] == "")
            .filter_map(|t| t["labels"]["instance"].as_str().map(str::to_owned))
            .collect();
        Ok((targets.len() == SERVICES.len() && up.len() == SERVICES.len()).then_some(()))
    })
    .await?;
    wait_for("every instance's series", Duration::from_secs(30), || async {
        let found = api("query?query=count(omnisaga_build_info)".into()).await?;
        let count = found["result"][0]["value"][1]
            .as_str()
            .and_then(|n| n.parse().ok());
        Ok((count == Some(SERVICES.len())).then_some(()))
    })
    .await?;

    // The project's alert rules, every one loaded and evaluated without error.
    let want = alert_names()?;
    wait_for(
        "every alert rule to evaluate",
        Duration::from_secs(60),
        || async {
            let rules = api("rules?type=alert".into()).await?;
            let loaded: Vec<&Value> = rules["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            let names: BTreeSet<String> = loaded
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            ensure!(
                names == want,
                "rules loaded {names:?}, infra/prometheus/alerts.yml has {want:?}"
            );
            Ok(loaded.iter().all(|r| r["health"] == "ok").then_some(()))
        },
    )
    .await?;

    // The page `make run` prints for them.
    let page = http
        .get(format!("{}/classic/alerts", prometheus.url))
        .send()
        .await?;
    ensure!(
        page.status().is_success(),
        "/classic/alerts answered {}",
        page.status()
    );
    let page = page.text().await?;
    ensure!(
        want.iter().all(|name| page.contains(name.as_str())),
        "/classic/alerts lists every rule"
    );

    // An order: its placement's latency sample carries its trace.
    let client = Client::new(stack);
    let id = client
        .place(&order_body("SKU-MUG", 1, "tok_visa", "cust-prom"))
        .await?;
    let order = client
        .wait_status(&id, "SHIPPED", Duration::from_secs(60))
        .await?;
    let trace_id = order["trace_id"]
        .as_str()
        .context("the order has a trace_id")?
        .to_owned();
    let query = "http_server_request_duration_seconds_bucket{route=\"/v1/orders\",method=\"POST\"}";
    wait_for(
        "the order's exemplar in Prometheus",
        Duration::from_secs(60),
        || async {
            let now = chrono::Utc::now().timestamp();
            let found = api(format!(
                "query_exemplars?query={}&start={}&end={}",
                urlencode(query),
                now - 600,
                now + 60
            ))
            .await?;
            let ids: Vec<&str> = found
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["exemplars"].as_array().into_iter().flatten())
                .filter_map(|e| e["labels"]["trace_id"].as_str())
                .collect();
            Ok(ids.contains(&trace_id.as_str()).then_some(()))
        },
    )
    .await?;
    let url = format!("{}/api/traces/{trace_id}", stack.traces_url);
    wait_for(
        "the trace viewer to know the exemplar's trace",
        Duration::from_secs(30),
        || async {
            let trace: Value = http.get(&url).send().await?.json().await.unwrap_or_default();
            let spans = trace["data"][0]["spans"].as_array().cloned().unwrap_or_default();
            Ok(spans
                .iter()
                .any(|s| s["operationName"] == "POST /v1/orders")
                .then_some(()))
        },
    )
    .await?;

    // The dashboards' queries are valid PromQL here, and the latency
    // panels show the order.
    // (A rate needs two scrapes since the order.)
    for expr in dashboard_exprs()? {
        let latency = expr.contains("http_server_request_duration") || expr.contains("saga_stage");
        wait_for(
            &format!("the dashboard's {expr}"),
            Duration::from_secs(30),
            || async {
                let data = api(format!("query?query={}", urlencode(&expr))).await?;
                Ok((!latency || !data["result"].as_array().is_none_or(Vec::is_empty)).then_some(()))
            },
        )
        .await?;
    }

    // One click: the exemplars page links it to the trace viewer.
    let page = format!("{}&minutes=5", prometheus.exemplars_url);
    let dom = browse(&page).await?;
    let link = format!("href=\"{}/trace/{trace_id}\"", stack.traces_url);
    ensure!(
        dom.contains(&link),
        "the exemplars page links no {link}: {}",
        dom.lines().find(|l| l.contains("<body")).unwrap_or("no body")
    );
    Ok(())
}

/// The dashboards and the alert rules name only series the code writes
/// (a histogram's by its `_bucket`, `_sum` and `_count`).
#[test]
fn the_dashboards_and_alert_rules_query_series_the_code_defines() -> Result<()> {
    let root = repo_root()?;
    let mut queries = dashboard_exprs()?;
    queries.push(std::fs::read_to_string(root.join("infra/prometheus/alerts.yml"))?);
    let mut code = String::new();
    for dir in ["crates", "services", "tools"] {
        rust_code(&root.join(dir), &mut code)?;
    }
    let mut missing = BTreeSet::new();
    for query in &queries {
        for name in series_names(query) {
            if !code
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == name)
            {
                missing.insert(name);
            }
        }
    }
    ensure!(missing.is_empty(), "no code writes {missing:?}");
    Ok(())
}

/// The series names of the project's own (`omnisaga_`, `http_server_`,
/// `process_`) in a query, a histogram's suffix taken off.
fn series_names(query: &str) -> Vec<String> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            ["omnisaga_", "http_server_", "process_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(|w| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// The lines of the `.rs` files under `dir` that are not comments.
fn rust_code(dir: &std::path::Path, out: &mut String) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.ends_with("target") {
            rust_code(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)?;
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// Every panel query of the Grafana dashboards (`infra/grafana/dashboards`).
fn dashboard_exprs() -> Result<Vec<String>> {
    let mut exprs = Vec::new();
    for entry in std::fs::read_dir(repo_root()?.join("infra/grafana/dashboards"))? {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(entry?.path())?)?;
        for panel in dashboard["panels"].as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                exprs.extend(target["expr"].as_str().map(str::to_owned));
            }
        }
    }
    ensure!(!exprs.is_empty(), "no dashboard queries found");
    Ok(exprs)
}

/// The alert names of `infra/prometheus/alerts.yml`.
fn alert_names() -> Result<BTreeSet<String>> {
    let rules = std::fs::read_to_string(repo_root()?.join("infra/prometheus/alerts.yml"))?;
    Ok(rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_owned())
        .collect())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// The DOM of `url` after its scripts fetched and drew (headless
/// Chromium, 10 s of virtual time), and a screenshot of it kept as
/// `test-artefacts/prometheus-exemplars.png`.
async fn browse(url: &str) -> Result<String> {
    let browser = ["chromium-headless-shell", "chromium"]
        .into_iter()
        .find(|b| which(b))
        .context("no headless Chromium: `make deps` installs Debian's chromium-headless-shell")?;
    let profile = std::env::temp_dir().join(format!("omnisaga-chromium-{}", uuid::Uuid::new_v4().simple()));
    let common = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--virtual-time-budget=10000".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let dom = Command::new(browser)
        .args(&common)
        .args(["--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .await?;
    ensure!(
        dom.status.success(),
        "{browser} --dump-dom failed: {:?}",
        dom.status
    );
    let screenshot = artefacts()?.join("prometheus-exemplars.png");
    let shot = Command::new(browser)
        .args(&common)
        .args(["--hide-scrollbars", "--window-size=1360,900"])
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .await?;
    ensure!(
        shot.status.success(),
        "{browser} --screenshot failed: {:?}",
        shot.status
    );
    println!("exemplars screenshot: {}", screenshot.display());
    let _ = std::fs::remove_dir_all(&profile);
    Ok(String::from_utf8(dom.stdout)?)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}

/// `test-artefacts/` in the build's target directory.
fn artefacts() -> Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root()?.join("target"),
    };
    let dir = target.join("test-artefacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
