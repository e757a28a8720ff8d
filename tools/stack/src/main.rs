//! `make run`: starts the whole system with durable local defaults (and
//! Prometheus scraping it, its alert rules loaded), prints
//! where everything is, writes `.omnisaga/env`, and stops it all on Ctrl-C or
//! SIGTERM. `omnisaga-stack clean` (`make clean-data`) forgets the stack:
//! its data directory and its databases.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::Result;
use omnisaga_auth::Scope;
use omnisaga_stack::{local_state, repo_root, Broker, Prometheus, Stack, StackOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let dir = match std::env::var("OMNISAGA_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => repo_root()?.join(".omnisaga"),
    };
    std::fs::create_dir_all(&dir)?;
    // The databases belong to this data directory, and start afresh with
    // the broker's log or not at all (local_state).
    let db_prefix = local_state::db_prefix(&dir)?;
    if std::env::args().nth(1).as_deref() == Some("clean") {
        local_state::reset(&dir, &db_prefix).await?;
        std::fs::remove_dir_all(&dir)?;
        eprintln!("forgot {} and the databases {db_prefix}_*", dir.display());
        return Ok(());
    }
    local_state::reconcile(&dir, &db_prefix).await?;
    let options = StackOptions {
        dir: dir.clone(),
        db_prefix: db_prefix.clone(),
        fresh_databases: false,
        broker: Broker::Own,
        topic_prefix: "omnisaga.".into(),
        fixed_ports: true,
        env: Default::default(),
        instances: Default::default(),
        brokers: 1,
        database_proxies: false,
        webhook_sink: false,
        balance_on_readiness: false,
    };
    eprintln!("starting the broker, the databases and five services...");
    let stack = Stack::start(options).await?;
    local_state::record(&dir, &db_prefix).await?;
    let prometheus = Prometheus::start(&stack, std::time::Duration::from_secs(5)).await?;

    let mut env = String::new();
    for s in &stack.services {
        writeln!(env, "{}_URL={}", s.name.to_uppercase(), s.url)?;
        writeln!(env, "{}_ADMIN_URL={}", s.name.to_uppercase(), s.admin_url)?;
    }
    writeln!(env, "KAFKA_BROKERS={}", stack.kafka.brokers)?;
    // The CLI logs in as the broker's admin; analysts get their own user,
    // which reads the saga topics and nothing else.
    let broker_dir = std::path::absolute(dir.join("broker"))?;
    writeln!(env, "KAFKA_USERNAME=admin")?;
    writeln!(
        env,
        "KAFKA_PASSWORD_FILE={}",
        broker_dir.join("admin.password").display()
    )?;
    if let Some(users) = &stack.kafka_users {
        let login = users.env(omnisaga_runtime::catalog::access::ANALYST);
        for (key, value) in login.iter().filter(|(k, _)| *k != "KAFKA_SECURITY_PROTOCOL") {
            writeln!(env, "ANALYST_{key}={}", absolute(value)?)?;
        }
    }
    writeln!(env, "KAFKA_TOPIC_PREFIX={}", stack.topic_prefix())?;
    writeln!(env, "ANALYTICS_DATABASE={}", stack.database("analytics"))?;
    writeln!(env, "TRACES_URL={}", stack.traces_url)?;
    writeln!(env, "PROMETHEUS_URL={}", prometheus.url)?;
    // Demo tokens of the local key (.omnisaga/auth), valid a day; mint more
    // with `omnisaga token mint`.
    writeln!(env, "CUSTOMER_TOKEN={}", stack.customer_token("customer-1"))?;
    writeln!(env, "OTHER_CUSTOMER_TOKEN={}", stack.customer_token("customer-2"))?;
    writeln!(
        env,
        "ADMIN_TOKEN={}",
        stack.token("operator", &omnisaga_stack::OPERATOR_SCOPES)
    )?;
    writeln!(
        env,
        "ANALYST_TOKEN={}",
        stack.token("analyst", &[Scope::AnalyticsRead])
    )?;
    std::fs::write(dir.join("env"), &env)?;

    let order = stack.url("order");
    println!("\nomnisaga is running.\n");
    for s in &stack.services {
        println!(
            "  {:<13} {}   (health: {}/readyz, API docs: {}/docs; admin and internal routes: {})",
            s.name, s.url, s.url, s.url, s.admin_url
        );
    }
    println!(
        "  {:<13} {}   (SASL/SCRAM: the CLI logs in as admin; ANALYST_KAFKA_* in the env file)",
        "kafka", stack.kafka.brokers
    );
    println!(
        "  {:<13} {}   (Jaeger UI; find an order's trace by the trace_id its API returns)",
        "traces", stack.traces_url
    );
    println!(
        "  {:<13} {}   (every instance scraped, alert rules at /classic/alerts; latency with exemplars, one click to a trace: {})",
        "prometheus", prometheus.url, prometheus.exemplars_url
    );
    println!("  {:<13} {}/logs/", "logs", dir.display());
    println!("  {:<13} {}/env\n", "env file", dir.display());
    println!(
        "Every call needs a bearer token; {}/env holds demo ones:",
        dir.display()
    );
    println!("  CUSTOMER_TOKEN, OTHER_CUSTOMER_TOKEN (two customers), ADMIN_TOKEN, ANALYST_TOKEN\n");
    println!("Place an order (source {}/env first):\n", dir.display());
    println!(
        "  curl -s -X POST {order}/v1/orders -H \"Authorization: Bearer $CUSTOMER_TOKEN\" -H 'Content-Type: application/json' -H \"Idempotency-Key: $(uuidgen || date +%s%N)\" \\\n    -d '{{\"channel\":\"mobile\",\"items\":[{{\"sku\":\"SKU-MUG\",\"quantity\":2}}],\"shipping_address\":{{\"name\":\"Ada\",\"line1\":\"1 Main St\",\"city\":\"Berlin\",\"postal_code\":\"10115\",\"country\":\"DE\"}},\"payment_method\":\"tok_visa\"}}'\n"
    );
    println!(
        "Then follow it:  curl -s -H \"Authorization: Bearer $CUSTOMER_TOKEN\" {order}/v1/orders/<order_id>"
    );
    println!("Its trace:       {}/trace/<trace_id>", stack.traces_url);
    println!(
        "Its messages:    curl -s -H \"Authorization: Bearer $CUSTOMER_TOKEN\" {}/v1/orders/<order_id>/notifications",
        stack.url("notification")
    );
    println!(
        "Analytics:       curl -s -H \"Authorization: Bearer $ANALYST_TOKEN\" {}/v1/summary",
        stack.url("analytics")
    );
    println!("Dashboard:       {}/dashboard", stack.url("analytics"));
    println!(
        "Analysts' SQL:   psql -h 127.0.0.1 -U omnisaga_analyst {}   (docs/analytics.md)",
        stack.database("analytics")
    );
    let cli = omnisaga_stack::bin_dir()?.join("omnisaga");
    println!("Timeline (CLI):  {} timeline <order_id>\n", cli.display());
    println!("Press Ctrl-C to stop.");

    wait_for_stop().await;
    eprintln!("\nstopping...");
    prometheus.stop().await;
    stack.stop().await?;
    eprintln!("stopped.");
    Ok(())
}

async fn wait_for_stop() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// `value` made absolute when it is a relative path that exists, so the env
/// file works from any directory.
fn absolute(value: &str) -> std::io::Result<String> {
    let path = std::path::Path::new(value);
    Ok(if path.is_relative() && path.exists() {
        std::path::absolute(path)?.display().to_string()
    } else {
        value.to_owned()
    })
}
