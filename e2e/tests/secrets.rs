//! Secrets stay out of the logs: a saga run with a database password in
//! every service's `DATABASE_URL` and `DATABASE_MIGRATION_URL`, a Kafka password for every service and
//! bearer tokens on every call, one of them refused, leaves no password and
//! no token in any log line.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    client::{order_body, wait_for, Client},
    pg_password, runtime_role, Stack, StackOptions, SERVICES,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_or_token_is_ever_logged() -> Result<()> {
    let mut options = StackOptions::for_test();
    let prefix = options.db_prefix.clone();
    // Both of every service's database URLs carry their role's password.
    let mut db_passwords = Vec::new();
    for (service, _) in SERVICES {
        let db = format!("{prefix}_{service}");
        for (key, role) in [
            ("DATABASE_URL", runtime_role(service)),
            ("DATABASE_MIGRATION_URL", format!("omnisaga_{service}")),
        ] {
            let password = pg_password(&role)?;
            let url = format!("postgres://{role}:{password}@127.0.0.1:5432/{db}");
            options = options.set_env(service, key, &url);
            db_passwords.push(password);
        }
    }
    let stack = Stack::start(options).await?;
    let result = check(&stack, db_passwords).await;
    stack.finish(result.is_ok()).await?;
    result
}

async fn check(stack: &Stack, db_passwords: Vec<String>) -> Result<()> {
    let c = Client::new(stack);
    let id = c
        .place(&order_body("SKU-MUG", 1, "tok_visa", "secretive"))
        .await?;
    c.wait_status(&id, "SHIPPED", Duration::from_secs(60)).await?;
    c.wait_message(&id, "shipped", Duration::from_secs(60)).await?;
    // A refused token is logged as refused, never as itself.
    let customer = c.customer_token("secretive");
    let forged = format!("{customer}x");
    let refused = reqwest::Client::new()
        .get(format!("{}/v1/orders/{id}", c.order))
        .bearer_auth(&forged)
        .send()
        .await?;
    ensure!(refused.status() == 401, "a forged token: {}", refused.status());
    let order_log = stack.log_path("order");
    wait_for(
        "the order service to log the refusal",
        Duration::from_secs(10),
        || async {
            let log = std::fs::read_to_string(&order_log)?;
            Ok(log.contains("unauthorized").then_some(()))
        },
    )
    .await?;

    let tokens = [customer, forged];
    // A token's signature part alone must not show either.
    let signatures: Vec<String> = tokens
        .iter()
        .filter_map(|t| t.rsplit('.').next().map(str::to_owned))
        .collect();
    let mut secrets = db_passwords;
    secrets.extend(tokens);
    let users = stack
        .kafka_users
        .as_ref()
        .context("the test broker has SASL users")?;
    for (service, _) in SERVICES {
        let login = users.login(service)?;
        let (_, password) = login.credentials.context("a SCRAM login has a password")?;
        secrets.push(password);
    }
    let mut lines = 0;
    for (service, _) in SERVICES {
        let log = std::fs::read_to_string(stack.log_path(service))?;
        ensure!(!log.is_empty(), "{service} logged nothing");
        for line in log.lines() {
            lines += 1;
            for secret in secrets.iter().chain(&signatures) {
                ensure!(
                    !line.contains(secret.as_str()),
                    "{service} logged a secret: {line}"
                );
            }
        }
    }
    ensure!(lines > 20, "only {lines} log lines: the check saw too little");
    Ok(())
}
