//! A crash in each window between two steps that must both happen, made
//! at will by a failpoint (`omnisaga_runtime::failpoint`, armed with
//! `FAILPOINTS` in one service started again for it): the process aborts
//! there, is started again without it, and the saga must finish with its
//! guarantee kept.
//!
//! | window | guarantee |
//! |---|---|
//! | payment: the provider approved, the answer not committed | the order authorised once at the provider (its ledger), nothing left held |
//! | order's relay: the broker acknowledged, the row not marked | the event on its topic (resent: a duplicate, counted and deduped by every consumer), the saga done |
//! | notification's consumer: committed, the offset not stored | the record redelivered and dropped by the inbox, its message queued and sent once |
//! | notification's dispatcher: the chat message sent, not recorded | it reaches the chat once or twice (under one message id), every later one once, in order |
//!
//! Each window is a test with a stack of its own. Needs binaries with
//! failpoints (`make build`).

// make test runs this binary alone: its crash-and-redeliver test (notification's
// inbox dropping the redelivered record) timed out twice beside another
// stack and passes alone; why is not found yet.

use std::{collections::HashMap, time::Duration};

use anyhow::{ensure, Context, Result};
use omnisaga_e2e::{
    chaos::broker,
    client::{wait_for, Client},
    failpoints::{counter, place_and_crash, recover},
    pg_server, Stack, StackOptions,
};
use omnisaga_runtime::{catalog::catalog, failpoint};
use sqlx::{PgPool, Row};

/// How long a saga may take once the crashed service is back, claims and
/// leases run out and the consumer groups rebalanced.
const WAIT: Duration = Duration::from_secs(90);

/// Runs `window` against a stack of its own, with short leases: a call
/// or a message whose worker died is taken again once its lease runs out
/// (payment: about 12 s, notification 31 s).
async fn with_stack<F>(window: F) -> Result<()>
where
    F: for<'a> FnOnce(&'a mut Stack) -> futures::future::BoxFuture<'a, Result<()>>,
{
    let options = StackOptions {
        webhook_sink: true,
        ..StackOptions::for_test()
    }
    .warehouse_ms(20, 0, 20)
    .set_env("payment", "PAYMENT_PROVIDER_TIMEOUT_MS", "500")
    .set_env("notification", "NOTIFICATION_SEND_TIMEOUT_MS", "1000");
    let mut stack = Stack::start(options).await?;
    let result = window(&mut stack).await;
    stack.finish(result.is_ok()).await?;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_provider_approved_charges_once() -> Result<()> {
    with_stack(|s| Box::pin(provider_approved_then_crash(s))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_broker_acknowledged_resends_and_the_inboxes_drop_it() -> Result<()> {
    with_stack(|s| Box::pin(relay_acknowledged_then_crash(s))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_consumer_committed_redelivers_and_the_inbox_drops_it() -> Result<()> {
    with_stack(|s| Box::pin(consumer_committed_then_crash(s))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_message_was_sent_resends_only_that_message() -> Result<()> {
    with_stack(|s| Box::pin(message_sent_then_crash(s))).await
}

/// The order service's topic: its name in the catalog, and on the stack.
fn orders_topic(stack: &Stack) -> Result<(String, String)> {
    let topic = catalog().owned_by("order").context("order owns no topic")?;
    Ok((topic.base_name().to_owned(), topic.name(stack.topic_prefix())))
}

async fn db(stack: &Stack, service: &str) -> Result<PgPool> {
    Ok(PgPool::connect(&format!("{}/{}", pg_server(), stack.database(service))).await?)
}

/// Payment dies after the provider approved and before the answer's
/// transaction commits: the call is made again once its lease runs out,
/// under the same payment id, and the provider answers it with its first
/// answer. One approval at the provider, held, and the stream's.
async fn provider_approved_then_crash(stack: &mut Stack) -> Result<()> {
    let crashed = place_and_crash(stack, "payment", failpoint::PROVIDER_APPROVED, "fp-provider").await?;
    let id = crashed.order_id()?;
    let payment = db(stack, "payment").await?;
    // In the window: the provider holds the approval, the stream has none.
    let (held, authorised): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM provider_ledger WHERE payment_id = 'pay-' || $1 || '-1'),
                (SELECT count(*) FROM events WHERE event_type = 'PaymentAuthorized' AND stream_id LIKE '%' || $1)",
    )
    .bind(&id)
    .fetch_one(&payment)
    .await?;
    ensure!(
        (held, authorised) == (1, 0),
        "after the crash: {held} approvals at the provider, {authorised} PaymentAuthorized"
    );
    recover(stack, crashed).await?;
    let c = Client::new(stack);
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    let ledger: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT payment_id, outcome, voided_at IS NULL FROM provider_ledger
         WHERE payment_id LIKE 'pay-' || $1 || '-%' ORDER BY payment_id",
    )
    .bind(&id)
    .fetch_all(&payment)
    .await?;
    ensure!(
        ledger == vec![(format!("pay-{id}-1"), "APPROVED".to_owned(), true)],
        "the provider holds for order {id}: {ledger:?} (one approval, not voided, expected)"
    );
    let authorised: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'PaymentAuthorized' AND stream_id LIKE '%' || $1",
    )
    .bind(&id)
    .fetch_one(&payment)
    .await?;
    ensure!(authorised == 1, "{authorised} PaymentAuthorized for {id}");
    Ok(())
}

/// Order's relay dies after the broker acknowledged `OrderPlaced` and
/// before it marked the row: the next relay sends it again. The topic
/// holds it twice (counted), every other event of the order once, and each
/// consumer of the topic dropped the second copy in its inbox.
async fn relay_acknowledged_then_crash(stack: &mut Stack) -> Result<()> {
    let crashed = place_and_crash(stack, "order", failpoint::RELAY_ACKED, "fp-relay").await?;
    let id = recover(stack, crashed).await?;
    let c = Client::new(stack);
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    let order = db(stack, "order").await?;
    // The saga went on with the first copy; the second is sent once the
    // new relay gets to the row it finds unmarked.
    wait_for("order's outbox to be published", WAIT, || async {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&order)
            .await?;
        Ok((left == 0).then_some(()))
    })
    .await?;
    let records = broker::records(stack).await?;
    let mut copies: HashMap<String, usize> = HashMap::new();
    let (base, topic) = orders_topic(stack)?;
    for r in records.iter().filter(|r| r.topic == base && r.key == id) {
        *copies.entry(r.event_id.clone().unwrap_or_default()).or_default() += 1;
    }
    let placed: String = sqlx::query_scalar(
        "SELECT event_id::text FROM events WHERE event_type = 'OrderPlaced' AND stream_id LIKE '%' || $1",
    )
    .bind(&id)
    .fetch_one(&order)
    .await?;
    eprintln!("[failpoints] copies on the orders topic of order {id}'s events: {copies:?}");
    ensure!(
        copies.get(&placed) == Some(&2),
        "OrderPlaced {placed} is on its topic {:?} times (once, and resent once, expected): {copies:?}",
        copies.get(&placed)
    );
    ensure!(copies.iter().all(|(e, n)| *e == placed || *n == 1), "{copies:?}");
    for service in ["payment", "warehouse", "notification", "analytics"] {
        let dropped = counter(
            &stack.url(service),
            "omnisaga_consumer_handled_total",
            &[("topic", &topic), ("outcome", "duplicate")],
        )
        .await?;
        ensure!(dropped >= 1.0, "{service}'s inbox dropped no copy of {topic}");
    }
    Ok(())
}

/// Notification's consumer dies after committing `OrderPlaced` (its inbox
/// row and the queued message) and before storing the offset: the record
/// is fetched again and the inbox drops it; the message was queued once and
/// reaches the chat once.
async fn consumer_committed_then_crash(stack: &mut Stack) -> Result<()> {
    let crashed = place_and_crash(
        stack,
        "notification",
        failpoint::CONSUMER_COMMITTED,
        "fp-consumer",
    )
    .await?;
    let id = crashed.order_id()?;
    // In the window: what the batch queued is committed (the placement's
    // message, and those of events that came with it).
    let notification = db(stack, "notification").await?;
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE order_id::text = $1")
        .bind(&id)
        .fetch_one(&notification)
        .await?;
    ensure!(queued >= 1, "after the crash: no message queued for {id}");
    recover(stack, crashed).await?;
    let c = Client::new(stack);
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    c.wait_message(&id, "shipped", WAIT).await?;
    // The batch that crashed holds the placement, or, when the saga ran
    // ahead of the consumer, its later events too, of any topic: a
    // redelivered record of any of them is dropped as a duplicate.
    let url = stack.url("notification");
    let dropped = wait_for(
        "notification's inbox to drop a redelivered record",
        WAIT,
        || async {
            let n = counter(
                &url,
                "omnisaga_consumer_handled_total",
                &[("outcome", "duplicate")],
            )
            .await?;
            Ok((n >= 1.0).then_some(n))
        },
    )
    .await?;
    eprintln!("[failpoints] notification dropped {dropped} redelivered records");
    let queued: Vec<(String, i64)> = sqlx::query(
        "SELECT template, count(*) FROM notifications WHERE order_id::text = $1 GROUP BY template",
    )
    .bind(&id)
    .fetch_all(&notification)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    ensure!(
        queued.iter().all(|(_, n)| *n == 1),
        "messages queued for {id}: {queued:?}"
    );
    sent_once_each(stack, &id, None)
}

/// Notification's dispatcher dies after the chat took the order's first
/// message and before recording it: once its claim runs out the message
/// goes again under the same message id (a receiver dedupes on it), and
/// only then the later ones, each once.
async fn message_sent_then_crash(stack: &mut Stack) -> Result<()> {
    let crashed = place_and_crash(stack, "notification", failpoint::MESSAGE_SENT, "fp-dispatcher").await?;
    let id = crashed.order_id()?;
    // In the window: the chat has the message, the service no record of it.
    let got = stack.webhook.as_ref().context("no webhook sink")?.receipts();
    let sent = got.per_order.get(&id).map_or(0, Vec::len);
    let notification = db(stack, "notification").await?;
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'NotificationSent' AND stream_id LIKE '%' || $1",
    )
    .bind(&id)
    .fetch_one(&notification)
    .await?;
    ensure!(
        (sent, recorded) == (1, 0),
        "after the crash: {sent} messages at the chat, {recorded} recorded as sent"
    );
    recover(stack, crashed).await?;
    let c = Client::new(stack);
    c.wait_status(&id, "SHIPPED", WAIT).await?;
    c.wait_message(&id, "shipped", WAIT).await?;
    let receipts = stack.webhook.as_ref().context("no webhook sink")?.receipts();
    let first = receipts
        .per_order
        .get(&id)
        .and_then(|r| r.first())
        .map(|(m, _)| m.clone())
        .context("no message reached the chat")?;
    sent_once_each(stack, &id, Some(&first))?;
    // Each message recorded once: the one sent twice too.
    let recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'NotificationSent' AND stream_id LIKE '%' || $1",
    )
    .bind(&id)
    .fetch_one(&notification)
    .await?;
    let messages = receipts.per_order.get(&id).map_or(0, |r| {
        r.iter()
            .map(|(m, _)| m)
            .collect::<std::collections::HashSet<_>>()
            .len()
    });
    ensure!(
        recorded as usize == messages,
        "{recorded} NotificationSent for {messages} messages of {id}"
    );
    Ok(())
}

/// Every message of order `id` reached the chat once, in the order they
/// were queued, but `resent`, which may have reached it twice (in a row).
fn sent_once_each(stack: &Stack, id: &str, resent: Option<&str>) -> Result<()> {
    let receipts = stack.webhook.as_ref().context("no webhook sink")?.receipts();
    let got = receipts.per_order.get(id).cloned().unwrap_or_default();
    eprintln!("[failpoints] order {id}'s messages as the chat got them: {got:?}");
    let mut ids: Vec<&str> = got.iter().map(|(m, _)| m.as_str()).collect();
    ids.dedup();
    let mut seen = std::collections::HashSet::new();
    ensure!(
        ids.iter().all(|m| seen.insert(*m)),
        "a message came again after a later one: {got:?}"
    );
    for (message, template) in &got {
        let n = receipts.per_message.get(message).copied().unwrap_or(0);
        let allowed = if resent == Some(message.as_str()) { 2 } else { 1 };
        ensure!(
            (1..=allowed).contains(&n),
            "message {message} ({template}) reached the chat {n} times: {got:?}"
        );
    }
    let templates: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    ensure!(templates.contains(&"shipped"), "{got:?}");
    Ok(())
}
