//! A graceful stop under load: each service, sent SIGTERM while orders are
//! flowing through it (the warehouse with a pick backlog and picks in
//! hand), exits by itself within its grace period, handing back the work
//! it had not finished; and nothing is lost: every order placed before,
//! during and after the stops ships exactly once once the service is back.
//! The same with the broker gone (Ctrl-C on `make run` reaches the broker
//! with the services): nothing a stopping service still has for the
//! broker (records to publish, offsets to commit) holds it past its grace
//! period; what it did not publish stays in its outbox for its next start.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{ensure, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    Broker, Stack, StackOptions, Stopped,
};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(120);
/// Longest a service may take to exit after SIGTERM with work in flight: a
/// correctness bound (an orchestrator kills what outlives its grace
/// period), well above what a graceful stop needs.
const GRACE: Duration = Duration::from_secs(10);
/// Every service, the one taking the orders last (the load pauses while it
/// is down).
const STOPPED_IN_TURN: [&str; 5] = ["warehouse", "payment", "notification", "analytics", "order"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_stops_within_its_grace_period_under_load_and_loses_nothing() -> Result<()> {
    let options = StackOptions::for_test()
        .set_env("warehouse", "WAREHOUSE_PICKERS", "4")
        // Picks take a while: SIGTERM finds pickers with tasks in hand.
        .warehouse_ms(400, 200, 100);
    let mut stack = Stack::start(options).await?;
    let result = run(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_stops_within_its_grace_period_with_the_broker_gone() -> Result<()> {
    let options = StackOptions {
        broker: Broker::Own,
        ..StackOptions::for_test()
    }
    .set_env("warehouse", "WAREHOUSE_PICKERS", "4")
    .warehouse_ms(400, 200, 100);
    let mut stack = Stack::start(options).await?;
    let result = broker_gone(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn broker_gone(stack: &mut Stack) -> Result<()> {
    let c = Client::new(stack);
    let mut ids = Vec::new();
    for i in 0..20 {
        let body = order_body("SKU-TSHIRT-M", 1, "tok_visa", &format!("gone-{}", i % 8));
        ids.push(c.place(&body).await?);
    }
    let backlog_url = format!("{}/v1/pick-tasks/backlog", c.warehouse_admin);
    wait_for("a pick backlog", WAIT, || async {
        let b = c.get(&backlog_url).await?;
        Ok((b["by_status"]["READY"].as_i64().unwrap_or(0) >= 4).then_some(b))
    })
    .await?;
    stack.kill_broker().await?;
    // Orders placed with the broker gone: their events wait in the outbox.
    for i in 0..5 {
        let body = order_body("SKU-TSHIRT-M", 1, "tok_visa", &format!("gone-late-{i}"));
        ids.push(c.place(&body).await?);
    }
    let mut stops = Vec::new();
    for service in STOPPED_IN_TURN {
        let stopped = stack.stop_instance_timed(service, 1).await?;
        eprintln!(
            "{service} stopped with the broker gone in {:?} (cleanly: {})",
            stopped.after, stopped.cleanly
        );
        stops.push((service, stopped));
    }
    stack.restart_broker().await?;
    for (service, _) in omnisaga_e2e::SERVICES {
        stack.start_service(service).await?;
    }
    shipped_once(&c, &ids).await?;
    within_grace(&stops)
}

async fn run(stack: &mut Stack) -> Result<()> {
    let c = Arc::new(Client::new(stack));
    let placed = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = watch::channel(false);
    let load = tokio::spawn(place_until(c.clone(), placed.clone(), stopped));
    let count = || placed.lock().unwrap_or_else(|e| e.into_inner()).len();

    let mut stops: Vec<(&str, Stopped)> = Vec::new();
    for service in STOPPED_IN_TURN {
        let from = count();
        wait_for(
            &format!("orders flowing before {service} stops"),
            WAIT,
            || async { Ok((count() >= from + 15).then_some(())) },
        )
        .await?;
        if service == "warehouse" {
            let backlog = c
                .get(&format!("{}/v1/pick-tasks/backlog", c.warehouse_admin))
                .await?;
            eprintln!("stopping the warehouse with backlog {backlog}");
        }
        let stopped = stack.stop_instance_timed(service, 1).await?;
        eprintln!(
            "{service} stopped in {:?} (cleanly: {})",
            stopped.after, stopped.cleanly
        );
        stops.push((service, stopped));
        stack.start_service(service).await?;
    }
    let _ = stop.send(true);
    load.await?;

    let ids = placed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    eprintln!("{} orders placed", ids.len());
    shipped_once(&c, &ids).await?;
    within_grace(&stops)
}

/// Every order of `ids` paid and shipped, exactly once.
async fn shipped_once(c: &Client, ids: &[String]) -> Result<()> {
    for id in ids {
        c.wait_status(id, "SHIPPED", WAIT).await?;
        let timeline = c.timeline(id).await?;
        let count = |t: &str| timeline.iter().filter(|e| *e == t).count();
        ensure!(
            (count("PaymentAuthorized"), count("OrderShipped")) == (1, 1),
            "{id} was not paid and shipped exactly once: {timeline:?}"
        );
    }
    Ok(())
}

/// Each service of `stops` exited by itself, with status 0, within [`GRACE`].
fn within_grace(stops: &[(&str, Stopped)]) -> Result<()> {
    let slow: Vec<_> = stops
        .iter()
        .filter(|(_, s)| !s.cleanly || s.after > GRACE)
        .collect();
    ensure!(
        slow.is_empty(),
        "services that did not exit by themselves within {GRACE:?} of SIGTERM: {slow:?}"
    );
    Ok(())
}

/// Places an order every 40 ms until `stop`, keeping the ids of those
/// accepted (a placement refused while the order service is down is not
/// kept: it made no order).
async fn place_until(c: Arc<Client>, placed: Arc<Mutex<Vec<String>>>, mut stop: watch::Receiver<bool>) {
    let mut i = 0;
    while !*stop.borrow() {
        let body = order_body("SKU-TSHIRT-M", 1, "tok_visa", &format!("stop-{}", i % 8));
        if let Ok(id) = c.place(&body).await {
            placed.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        }
        i += 1;
        let _ = tokio::time::timeout(Duration::from_millis(40), stop.changed()).await;
    }
}
