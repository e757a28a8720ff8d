//! Transient outages: the stack's own Kafka broker killed (SIGKILL) and
//! restarted (its acknowledged records survive), every database connection of the services dropped, and the
//! PostgreSQL server itself stopped and started again. Orders are accepted
//! through the broker outage, by two order instances behind a balancer that
//! honours readiness (as a Kubernetes Service does): the broker's outage is
//! a detail of `/readyz`, never unreadiness, so the instances stay behind
//! it. Orders are refused with 503 while the database is down, and
//! readiness says so; services retry without crashing, nothing is lost.

// make test runs this binary alone: it stops the machine's PostgreSQL.

use std::time::Duration;

use anyhow::{ensure, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Broker, Stack, StackOptions,
};
use sqlx::Connection;

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_complete_across_a_broker_restart_and_dropped_database_connections() -> Result<()> {
    let options = StackOptions {
        // Its own broker, not the run's shared one: this test kills it.
        broker: Broker::Own,
        topic_prefix: "omnisaga.".into(),
        balance_on_readiness: true,
        ..StackOptions::for_test()
    }
    .instances("order", 2)
    .warehouse_ms(20, 0, 20);
    let prefix = options.db_prefix.clone();
    let mut stack = Stack::start(options).await?;
    let result = run(&mut stack, &prefix).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn ready(c: &Client, url: &str) -> Result<u16> {
    Ok(c.http
        .get(format!("{url}/readyz"))
        .send()
        .await?
        .status()
        .as_u16())
}

/// What instance `instance` of order says of the broker in `/readyz`, and
/// its status.
async fn broker_seen(c: &Client, stack: &Stack, instance: usize) -> Result<(u16, String)> {
    let resp = c
        .http
        .get(format!("{}/readyz", stack.instance_url("order", instance)))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await?;
    let broker = body["broker"]
        .as_str()
        .or(body["reason"].as_str())
        .unwrap_or_default();
    Ok((status, broker.to_owned()))
}

async fn run(stack: &mut Stack, prefix: &str) -> Result<()> {
    let c = Client::new(stack);
    let first = c.place(&order_body("SKU-MUG", 1, "tok_visa", "before")).await?;
    c.wait_status(&first, "SHIPPED", WAIT).await?;

    stack.kill_broker().await?;
    let seen: &Stack = stack;
    for instance in 1..=2 {
        let (status, broker) = wait_for("each order instance to see the broker outage", WAIT, || async {
            let (status, broker) = broker_seen(&c, seen, instance).await?;
            Ok((broker.contains("unreachable") || status == 503).then_some((status, broker)))
        })
        .await?;
        ensure!(
            status == 200,
            "order instance {instance} left its balancer over the broker: {status} {broker}"
        );
    }
    // Time for the balancer's probes to take an unready instance out (two
    // failed in a row): the absence of an event, which no condition shows.
    tokio::time::sleep(3 * omnisaga_e2e::balancer::PROBE_EVERY).await;
    // Each placement on a new connection, so the balancer picks its
    // instance for it (a kept connection would stay where it was).
    let mut fresh = c.clone();
    fresh.http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let mut during = Vec::new();
    for i in 0..5 {
        during.push(
            fresh
                .place(&order_body("SKU-MUG", 1, "tok_visa", &format!("outage-{i}")))
                .await?,
        );
    }
    stack.restart_broker().await?;
    for id in &during {
        c.wait_status(id, "SHIPPED", WAIT).await?;
    }
    ensure!(
        ready(&c, &c.order).await? == 200,
        "order not ready after the broker came back"
    );

    // Every service connection dropped at once, while orders are in flight.
    let mut after = Vec::new();
    for i in 0..5 {
        after.push(
            c.place(&order_body("SKU-TSHIRT-M", 1, "tok_visa", &format!("db-{i}")))
                .await?,
        );
    }
    let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
    let dropped: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE $1 AND pid <> pg_backend_pid()",
    )
    .bind(format!("{prefix}\\_%"))
    .fetch_all(&mut admin)
    .await?;
    ensure!(!dropped.is_empty(), "no service connection was dropped");
    for id in after.iter().chain(&during) {
        let order = c.wait_status(id, "SHIPPED", WAIT).await?;
        let timeline = order["timeline"].as_array().cloned().unwrap_or_default();
        let shipped = timeline
            .iter()
            .filter(|e| e["event_type"] == "OrderShipped")
            .count();
        assert_eq!(shipped, 1, "{id}");
        c.wait_message(id, "shipped", WAIT).await?;
    }
    for service in ["order", "payment", "warehouse", "notification", "analytics"] {
        ensure!(
            ready(&c, &stack.url(service)).await? == 200,
            "{service} did not recover"
        );
    }

    // The database server stopped while orders are in flight, then started again.
    let mut inflight = Vec::new();
    for i in 0..5 {
        inflight.push(
            c.place(&order_body("SKU-MUG", 1, "tok_visa", &format!("pg-{i}")))
                .await?,
        );
    }
    let stopped = PostgresStopped::stop()?;
    // Unready now, both instances leave the balancer: ask one directly.
    let mut direct = c.clone();
    direct.order = stack.instance_url("order", 1);
    wait_for("order readiness to report the database outage", WAIT, || async {
        Ok((ready(&direct, &direct.order).await? == 503).then_some(()))
    })
    .await?;
    let (status, refused) = direct
        .post_order(
            "placed-while-the-database-is-down",
            &order_body("SKU-MUG", 1, "tok_visa", "pg-down"),
        )
        .await?;
    assert_eq!(
        (status, refused["code"].as_str()),
        (503, Some("unavailable")),
        "an order while the database is down: {refused}"
    );
    drop(stopped);
    for id in &inflight {
        c.wait_status(id, "SHIPPED", WAIT).await?;
        c.wait_message(id, "shipped", WAIT).await?;
    }
    for service in ["order", "payment", "warehouse", "notification", "analytics"] {
        let url = stack.url(service);
        wait_for(&format!("{service} to be ready again"), WAIT, || async {
            Ok((ready(&c, &url).await? == 200).then_some(()))
        })
        .await?;
    }

    // Without the trace backend the saga goes on; the lost spans are counted.
    stack.kill_trace_viewer().await?;
    let id = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "no-traces"))
        .await?;
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    // Each instance counts its own: ask each, not the balancer.
    let instances: Vec<String> = (1..)
        .map(|i| stack.instance_url("order", i))
        .take_while(|url| !url.is_empty())
        .collect();
    wait_for(
        "the order service to count spans it could not export",
        WAIT,
        || async {
            let mut dropped = 0.0;
            for url in &instances {
                let text = c.http.get(format!("{url}/metrics")).send().await?.text().await?;
                dropped += text
                    .lines()
                    .find(|l| l.starts_with("omnisaga_spans_dropped_total"))
                    .and_then(|l| l.rsplit(' ').next())
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
            Ok((dropped > 0.0).then_some(()))
        },
    )
    .await?;
    Ok(())
}

/// The machine's PostgreSQL cluster, stopped until this is dropped (also
/// when the test fails, so the rest of the suite finds it running).
struct PostgresStopped(String);

impl PostgresStopped {
    fn stop() -> Result<Self> {
        let version = std::fs::read_dir("/etc/postgresql")?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            .ok_or_else(|| anyhow::anyhow!("no PostgreSQL cluster in /etc/postgresql"))?;
        pg_ctlcluster(&version, "stop")?;
        Ok(Self(version))
    }
}

impl Drop for PostgresStopped {
    fn drop(&mut self) {
        if let Err(e) = pg_ctlcluster(&self.0, "start") {
            eprintln!("PostgreSQL did not start again: {e:#}");
        }
    }
}

fn pg_ctlcluster(version: &str, action: &str) -> Result<()> {
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", action])
        .status()?;
    ensure!(
        status.success(),
        "pg_ctlcluster {version} main {action}: {status}"
    );
    Ok(())
}
