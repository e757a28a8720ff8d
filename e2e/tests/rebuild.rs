//! Every service's read models made again from its own events, through
//! the `omnisaga` CLI on a live stack, as an operator would: after real
//! sagas (shipped, declined, cancelled) `omnisaga rebuild all --verify`
//! finds every projection identical; a read model damaged behind the
//! service's back is reported (exit 2, the rows named) and repaired by
//! `omnisaga rebuild`, after which a verify finds it identical again; and
//! so is one of every other service at once, by `omnisaga rebuild all`.

use std::{process::Output, time::Duration};

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, Client},
    Stack, StackOptions,
};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_model_is_rebuilt_from_its_events_and_a_damaged_one_repaired() -> Result<()> {
    let stack = Stack::start(StackOptions::for_test().warehouse_ms(20, 10, 20)).await?;
    let result = run(&stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn run(stack: &Stack) -> Result<()> {
    let c = Client::new(stack);
    let shipped = c
        .place(&order_body("SKU-MUG", 2, "tok_visa", "rebuild-1"))
        .await?;
    let declined = c
        .place(&order_body("SKU-BOTTLE", 1, "tok_decline", "rebuild-2"))
        .await?;
    c.wait_status(&shipped, "SHIPPED", WAIT).await?;
    c.wait_event(&declined, "PaymentFailed", WAIT).await?;

    let all = json(stack, &["rebuild", "all", "--verify", "--json"], 0).await?;
    let runs = all["runs"].as_array().context("runs")?;
    ensure!(runs.len() == 5, "a run per service: {all}");
    for run in runs {
        ensure!(
            run["run"]["identical"] == true,
            "identical after real sagas: {run}"
        );
        ensure!(run["run"]["status"] == "finished", "{run}");
    }
    let order = &runs[0]["run"];
    ensure!(
        order["report"][0]["tables"][0]["rebuilt_rows"].as_i64() >= Some(2),
        "the order view holds both orders: {order}"
    );

    // A row lost and a status changed behind the order service's back.
    let mut db = owner(stack, "order").await?;
    sqlx::query("DELETE FROM order_view WHERE order_id = $1::uuid")
        .bind(&shipped)
        .execute(&mut db)
        .await?;
    sqlx::query("UPDATE order_view SET status = 'SHIPPED' WHERE order_id = $1::uuid")
        .bind(&declined)
        .execute(&mut db)
        .await?;
    let out = stack.omnisaga(&["rebuild", "order", "--verify"]).await?;
    ensure!(
        out.status.code() == Some(2),
        "a verify that finds differences exits 2: {}",
        text(&out)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    for expected in [
        format!("missing {shipped}"),
        format!("different {declined} (status)"),
        "DIFFERENT".to_owned(),
    ] {
        ensure!(printed.contains(&expected), "{expected:?} in:\n{printed}");
    }
    ensure!(rows(&mut db, &shipped).await? == 0, "a verify repairs nothing");

    let out = stack.omnisaga(&["rebuild", "order"]).await?;
    ensure!(out.status.success(), "{}", text(&out));
    ensure!(
        String::from_utf8_lossy(&out.stdout).contains("repaired"),
        "{}",
        text(&out)
    );
    ensure!(rows(&mut db, &shipped).await? == 1, "the lost row is back");
    let status: String = sqlx::query_scalar("SELECT status FROM order_view WHERE order_id = $1::uuid")
        .bind(&declined)
        .fetch_one(&mut db)
        .await?;
    ensure!(status != "SHIPPED", "the changed status is repaired: {status}");
    json(stack, &["rebuild", "order", "--verify", "--json"], 0).await?;

    // One read model of every other service damaged: each is reported by
    // its own service, and `rebuild all` repairs them all.
    for (service, damage) in [
        ("payment", "DELETE FROM payment_view"),
        (
            "warehouse",
            "UPDATE stock SET on_hand = on_hand + 5 WHERE sku = 'SKU-MUG'",
        ),
        (
            "notification",
            "UPDATE notifications SET text = 'tampered' WHERE status = 'SENT'",
        ),
        ("analytics", "DELETE FROM fact_order_lines"),
    ] {
        let done = sqlx::query(damage)
            .execute(&mut owner(stack, service).await?)
            .await?;
        ensure!(done.rows_affected() > 0, "{service}: {damage} changed nothing");
    }
    let all = json(stack, &["rebuild", "all", "--verify", "--json"], 2).await?;
    let verdicts: Vec<(&str, bool)> = all["runs"]
        .as_array()
        .context("runs")?
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap_or("?"),
                r["run"]["identical"] == true,
            )
        })
        .collect();
    ensure!(
        verdicts
            == [
                ("order", true),
                ("payment", false),
                ("warehouse", false),
                ("notification", false),
                ("analytics", false)
            ],
        "each damaged service, and only those, differs: {all}"
    );
    let out = stack.omnisaga(&["rebuild", "all"]).await?;
    ensure!(out.status.success(), "{}", text(&out));
    let all = json(stack, &["rebuild", "all", "--verify", "--json"], 0).await?;
    ensure!(
        all["runs"]
            .as_array()
            .context("runs")?
            .iter()
            .all(|r| r["run"]["identical"] == true),
        "every read model identical after `rebuild all`: {all}"
    );
    Ok(())
}

/// Runs `omnisaga args...`, which must exit `code`, and parses its JSON.
async fn json(stack: &Stack, args: &[&str], code: i32) -> Result<Value> {
    let out = stack.omnisaga(args).await?;
    ensure!(
        out.status.code() == Some(code),
        "omnisaga {args:?}: {}",
        text(&out)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("omnisaga {args:?} printed no JSON"))
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn rows(db: &mut PgConnection, order_id: &str) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM order_view WHERE order_id = $1::uuid")
            .bind(order_id)
            .fetch_one(db)
            .await?,
    )
}

async fn owner(stack: &Stack, service: &str) -> Result<PgConnection> {
    let url = format!("{}/{}", omnisaga_e2e::pg_server(), stack.database(service));
    PgConnection::connect(&url)
        .await
        .with_context(|| format!("Failed to connect to {url}"))
}
