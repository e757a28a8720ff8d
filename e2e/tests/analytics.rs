//! What analysts and operators see after real sagas: the dashboard loaded in
//! a real headless browser (Debian's Chromium) with its figures checked
//! against the analytics database and a screenshot kept as a test artefact,
//! and the analysts' read-only database role.

use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{bail, ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Stack, StackOptions, ANALYST,
};
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::process::Command;

/// Orders placed: the first few are declined (an unknown card token), the rest ship.
const ORDERS: usize = 6;
const DECLINED: usize = 2;

async fn start_stack() -> Result<Stack> {
    Stack::start(StackOptions::for_test().warehouse_ms(20, 10, 20)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser_and_the_analysts_role_show_the_sagas() -> Result<()> {
    let stack = start_stack().await?;
    let result = check(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn check(stack: &Stack) -> Result<()> {
    let client = Client::new(stack);
    let mut shipped = Vec::new();
    for i in 0..ORDERS {
        let token = if i < DECLINED { "tok_decline" } else { "tok_visa" };
        let mut body = order_body(["SKU-MUG", "SKU-BOTTLE"][i % 2], 1, token, &format!("cust-{i}"));
        body["channel"] = ["mobile", "web", "pos"][i % 3].into();
        let id = client.place(&body).await?;
        if i >= DECLINED {
            shipped.push(id);
        }
    }
    for id in &shipped {
        client.wait_status(id, "SHIPPED", Duration::from_secs(60)).await?;
    }
    let analytics = stack.database("analytics");
    let db = PgPool::connect(&format!(
        "postgres://omnisaga_analytics@127.0.0.1:5432/{analytics}"
    ))
    .await?;
    wait_for(
        "analytics to count every order and answer",
        Duration::from_secs(60),
        || async {
            let r = sqlx::query(
            "SELECT count(placed_at), count(shipped_at), count(*) FILTER (WHERE payment_outcome <> 'none')
             FROM fact_orders",
        )
        .fetch_one(&db)
        .await?;
            let (placed, shipped_n, answered): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            Ok(
                (placed == ORDERS as i64 && shipped_n == shipped.len() as i64 && answered == ORDERS as i64)
                    .then_some(()),
            )
        },
    )
    .await?;

    let page = browse(&format!("{}/dashboard", stack.url("analytics"))).await?;
    let expected = sqlx::query(
        "SELECT count(placed_at), count(shipped_at), count(cancelled_at),
                avg((payment_outcome = 'authorized')::int) FILTER (WHERE payment_outcome <> 'none')::float8,
                count(*) FILTER (WHERE channel = 'mobile')
         FROM fact_orders",
    )
    .fetch_one(&db)
    .await?;
    let figures = [
        ("placed", expected.get::<i64, _>(0) as f64),
        ("shipped", expected.get::<i64, _>(1) as f64),
        ("cancelled", expected.get::<i64, _>(2) as f64),
        ("success_share", expected.get::<f64, _>(3)),
        ("placed.mobile", expected.get::<i64, _>(4) as f64),
        ("placed_last_hour", ORDERS as f64),
    ];
    for (name, want) in figures {
        let shown = figure(&page.dom, name).with_context(|| format!("no figure {name} on the dashboard"))?;
        ensure!(
            (shown - want).abs() < 1e-9,
            "the dashboard shows {name} = {shown}, the database {want}"
        );
    }
    ensure!(
        (figure(&page.dom, "success_share").unwrap_or(0.0) - (ORDERS - DECLINED) as f64 / ORDERS as f64)
            .abs()
            < 1e-9,
        "the success share counts the declined orders"
    );
    ensure!(
        page.dom.contains(r#"data-charts-drawn="5""#),
        "the browser laid out 5 charts: {}",
        page.dom
            .lines()
            .find(|l| l.contains("<body"))
            .unwrap_or("no body")
    );
    println!("dashboard screenshot: {}", page.screenshot.display());

    analyst_role(stack).await?;
    rebuilt_from_the_log(stack).await
}

/// The star schema the sagas left is what analytics' log gives again
/// (`/v1/admin/rebuilds`, docs/rebuild.md): a verify finds it identical.
async fn rebuilt_from_the_log(stack: &Stack) -> Result<()> {
    let admin = stack.admin_client();
    let base = stack.admin_url("analytics");
    let resp = admin
        .post(format!("{base}/v1/admin/rebuilds"))
        .json(&serde_json::json!({ "mode": "verify" }))
        .send()
        .await?;
    ensure!(resp.status() == 202, "a verify not started: {}", resp.status());
    let location = resp.headers()["location"].to_str()?.to_owned();
    let run: serde_json::Value = wait_for("the verify to end", Duration::from_secs(60), || async {
        let run: serde_json::Value = admin
            .get(format!("{base}{location}"))
            .send()
            .await?
            .json()
            .await?;
        Ok((run["status"] != "running").then_some(run))
    })
    .await?;
    ensure!(
        run["status"] == "finished" && run["identical"] == true,
        "the star schema differs from what the log gives: {run}"
    );
    ensure!(run["report"][0]["projection"] == "star_schema", "{run}");
    // Every order's placement and payment answer at least.
    ensure!(
        run["report"][0]["events"].as_i64() >= Some(2 * ORDERS as i64),
        "the verify folded too few events: {run}"
    );
    Ok(())
}

/// The `data-value` of the element whose `data-figure` is `name`.
fn figure(html: &str, name: &str) -> Option<f64> {
    let at = html.find(&format!(r#"data-figure="{name}" data-value=""#))?;
    html[at..]
        .split("data-value=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()
}

/// A page as the browser built it, and where its screenshot is.
struct Page {
    dom: String,
    screenshot: PathBuf,
}

/// Loads `url` in headless Chromium: the DOM after its scripts ran, and a
/// full-page screenshot under the build's `test-artefacts/`.
async fn browse(url: &str) -> Result<Page> {
    let browser = ["chromium-headless-shell", "chromium"]
        .into_iter()
        .find(|b| which(b))
        .context("no headless Chromium: `make deps` installs Debian's chromium-headless-shell")?;
    let profile = tempdir("omnisaga-chromium")?;
    let common = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
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
    let dir = artefacts()?;
    let screenshot = dir.join("dashboard.png");
    let shot = Command::new(browser)
        .args(&common)
        .args([
            "--hide-scrollbars",
            "--window-size=1400,1600",
            &format!("--screenshot={}", screenshot.display()),
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .await?;
    ensure!(
        shot.status.success(),
        "{browser} --screenshot failed: {:?}",
        shot.status
    );
    let png = std::fs::read(&screenshot).context("the screenshot was not written")?;
    ensure!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "the screenshot is not a full page ({} bytes)",
        png.len()
    );
    let _ = std::fs::remove_dir_all(&profile);
    Ok(Page {
        dom: String::from_utf8(dom.stdout)?,
        screenshot,
    })
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}

fn tempdir(label: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Where tests keep what a person may want to look at afterwards:
/// `test-artefacts/` in the build's target directory.
fn artefacts() -> Result<PathBuf> {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => omnisaga_e2e::repo_root()?.join("target"),
    };
    let dir = target.join("test-artefacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The analysts' role reads the star schema (every example query of
/// docs/analytics.md runs), and nothing else: no operational table, no
/// writes, no other service's database.
async fn analyst_role(stack: &Stack) -> Result<()> {
    let url = |service: &str| format!("postgres://{ANALYST}@127.0.0.1:5432/{}", stack.database(service));
    let mut analyst = PgConnection::connect(&url("analytics")).await?;
    let docs = std::fs::read_to_string(omnisaga_e2e::repo_root()?.join("docs/analytics.md"))?;
    let queries: Vec<&str> = docs
        .split("```sql\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect();
    ensure!(queries.len() >= 5, "docs/analytics.md has its example queries");
    for query in queries {
        let rows = sqlx::query(query)
            .fetch_all(&mut analyst)
            .await
            .with_context(|| format!("as {ANALYST}: {query}"))?;
        ensure!(!rows.is_empty(), "as {ANALYST}, nothing from: {query}");
    }
    for refused in [
        "SELECT count(*) FROM outbox",
        "SELECT count(*) FROM dead_letters",
        // The whole events the log keeps for rebuilds.
        "SELECT envelope FROM received_events",
        "UPDATE fact_orders SET items = 0",
        "DELETE FROM stage_events",
    ] {
        match sqlx::query(refused).execute(&mut analyst).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
            other => bail!("as {ANALYST}, {refused} was not refused for lack of privilege: {other:?}"),
        }
    }
    let order_db = PgConnection::connect(&url("order")).await;
    ensure!(order_db.is_err(), "{ANALYST} may connect to the order database");
    Ok(())
}
