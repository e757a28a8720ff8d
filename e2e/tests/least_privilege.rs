//! Each service's identity reaches its own data only.
//!
//! PostgreSQL: every role logs in with its password; without one, or with
//! a wrong one, it is refused over TCP (SQLSTATE 28P01). After the stack
//! started and every service migrated its tables as the database's owner,
//! each service's runtime role (what the service runs as) connects to its
//! own database and reads its tables, and is refused (SQLSTATE 42501,
//! permission denied for database) by every other service's, so the
//! payment role cannot read the order tables. The runtime role owns
//! nothing: it cannot disable the audit log's triggers, grant itself
//! DELETE on it, delete from it or drop it. The analysts' role connects to
//! the analytics database only, and no role holds a power beyond its grants
//! (superuser, creating databases or roles, bypassing row security).
//!
//! Kafka: the services run as SASL users of their own with the ACLs of the
//! catalog (a saga completing shows each may do its work); the payment user
//! is refused writing the orders topic, reading a topic it does not consume
//! and joining another service's group; the analyst user reads the saga
//! topics in its own groups and is refused a dead-letter topic, another
//! group and every write. The broker's controller listener does not answer
//! a client that did not log in (it once let anyone in as a superuser).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt as _;
use omnisaga_e2e::{
    client::{order_body, Client},
    describe_cluster_unauthenticated, Stack, StackOptions,
};
use rdkafka::{
    consumer::{Consumer as _, StreamConsumer},
    error::KafkaError,
    message::Message as _,
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};

#[path = "least_privilege/postgres.rs"]
mod postgres;

async fn start_stack() -> Result<Stack> {
    Stack::start(StackOptions::for_test()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_identity_reaches_its_own_data_only() -> Result<()> {
    let stack = start_stack().await?;
    let mut result = postgres::databases(&stack).await;
    if result.is_ok() {
        result = kafka(&stack).await;
    }
    stack.finish(result.is_ok()).await?;
    result
}

/// What the Kafka users may do: see the module's documentation.
async fn kafka(stack: &Stack) -> Result<()> {
    let users = stack
        .kafka_users
        .as_ref()
        .context("the test broker has SASL users")?;
    let controller = stack
        .controller_address()
        .context("the broker's controller listener: a shared broker's is OMNISAGA_TEST_KAFKA_CONTROLLER")?;
    if let Some(code) = describe_cluster_unauthenticated(&controller).await? {
        bail!(
            "the controller listener {controller} answered a client that did not log in (error code {code})"
        );
    }
    let c = Client::new(stack);
    let id = c.place(&order_body("SKU-MUG", 1, "tok_visa", "acl")).await?;
    c.wait_status(&id, "SHIPPED", Duration::from_secs(60))
        .await
        .context("a saga with every service under its own user and ACLs")?;

    let p = stack.topic_prefix();
    let topic = |name: &str| format!("{p}{name}");
    let payment = users.login("payment")?;
    let analyst = users.login("analyst")?;

    denied(
        produce(stack, &payment, &topic("orders.v1")).await,
        "payment writing the orders topic",
    )?;
    denied(
        first_record(stack, &payment, &topic("payment"), &topic("notifications.v1")).await,
        "payment reading a topic it does not consume",
    )?;
    denied(
        first_record(stack, &payment, &topic("order"), &topic("payments.v1")).await,
        "payment joining the order service's group",
    )?;

    let record = first_record(stack, &analyst, &topic("analyst-acl-test"), &topic("orders.v1"))
        .await
        .context("the analyst reading the orders topic in a group of its own")?;
    ensure!(!record.is_empty(), "the analyst read an empty record");
    denied(
        first_record(
            stack,
            &analyst,
            &topic("analyst-acl-test"),
            &topic("orders.v1.dlq"),
        )
        .await,
        "the analyst reading a dead-letter topic",
    )?;
    denied(
        first_record(stack, &analyst, &topic("analytics"), &topic("orders.v1")).await,
        "the analyst joining the analytics service's group",
    )?;
    for name in ["orders.v1", "payments.v1", "warehouse.v1", "notifications.v1"] {
        denied(
            produce(stack, &analyst, &topic(name)).await,
            &format!("the analyst writing {name}"),
        )?;
    }
    Ok(())
}

/// Writes one record to `topic` as `login`.
async fn produce(
    stack: &Stack,
    login: &omnisaga_runtime::catalog::client::ClientSecurity,
    topic: &str,
) -> Result<(), KafkaError> {
    let producer: FutureProducer = stack
        .kafka
        .client_as(login)
        .set("message.timeout.ms", "15000")
        .create()?;
    let record = FutureRecord::to(topic)
        .key("acl-test")
        .payload(b"not for this user".as_slice());
    producer
        .send(record, Duration::from_secs(15))
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

/// The payload of the first record of `topic`, consumed as `login` in `group`.
async fn first_record(
    stack: &Stack,
    login: &omnisaga_runtime::catalog::client::ClientSecurity,
    group: &str,
    topic: &str,
) -> Result<Vec<u8>, KafkaError> {
    let consumer: StreamConsumer = stack
        .kafka
        .client_as(login)
        .set("group.id", group)
        .set("group.protocol", "classic")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut stream = consumer.stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(message))) => return Ok(message.payload().unwrap_or_default().to_vec()),
            Ok(Some(Err(e))) if authorization(&e) => return Err(e),
            // Anything else (a rebalance in progress, a transient error) is retried.
            Ok(Some(Err(_))) => continue,
            Ok(None) | Err(_) => {
                return Err(KafkaError::MessageConsumption(
                    RDKafkaErrorCode::OperationTimedOut,
                ))
            }
        }
    }
}

fn authorization(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

/// `result` is the broker's refusal (an authorization error), not success
/// nor any other failure.
fn denied<T>(result: Result<T, KafkaError>, what: &str) -> Result<()> {
    match result {
        Err(e) if authorization(&e) => Ok(()),
        Err(e) => bail!("{what}: failed, but not as refused: {e}"),
        Ok(_) => bail!("{what}: allowed"),
    }
}
