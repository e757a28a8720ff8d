//! The invariants a fault run is judged by, read from every service's
//! database (and the broker, for consumer lag) once the stack is quiet. Each
//! gives its verdict with counterexamples: the order ids, and what differed.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::SystemTime,
};

use anyhow::{Context, Result};
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::catalog::catalog;
use prost::Message as _;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    TopicPartitionList,
};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection, Row as _};

use super::{
    faults::Injected,
    load::{Outcome, Placement},
};
use crate::{
    pg_server,
    traces::{trace_problems, Catalog},
    Stack, SERVICES,
};

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub id: &'static str,
    pub rule: &'static str,
    pub holds: bool,
    /// How many things were checked (orders, rows, events).
    pub checked: usize,
    /// What broke it, at most 20 of them.
    pub counterexamples: Vec<String>,
}

impl Verdict {
    fn new(id: &'static str, rule: &'static str, checked: usize, mut broken: Vec<String>) -> Self {
        broken.truncate(20);
        Self {
            id,
            rule,
            holds: broken.is_empty(),
            checked,
            counterexamples: broken,
        }
    }
}

/// Stock per SKU: `(on_hand, reserved, shipped)`, on hand and reserved as
/// the warehouse's `stock_levels` view counts them (shipped goods left both).
pub type Stock = BTreeMap<String, (i64, i64, i64)>;

/// Reads the warehouse's stock.
pub async fn stock(stack: &Stack) -> Result<Stock> {
    let mut db = connect(stack, "warehouse").await?;
    let rows = sqlx::query(
        "SELECT l.sku, l.on_hand, l.reserved, coalesce(x.quantity, 0)
         FROM stock_levels l LEFT JOIN shipped x USING (sku)",
    )
    .fetch_all(&mut db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<String, _>(0), (r.get(1), r.get(2), r.get(3))))
        .collect())
}

async fn connect(stack: &Stack, service: &str) -> Result<PgConnection> {
    let url = format!("{}/{}", pg_server(), stack.database(service));
    PgConnection::connect(&url)
        .await
        .with_context(|| format!("Failed to connect to {url}"))
}

/// The orders the order service holds, by id: `(customer, status)`.
pub async fn orders(stack: &Stack) -> Result<HashMap<String, (String, String)>> {
    let mut db = connect(stack, "order").await?;
    let rows = sqlx::query("SELECT order_id::text, customer_id, status FROM order_view")
        .fetch_all(&mut db)
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<String, _>(0), (r.get(1), r.get(2))))
        .collect())
}

/// Whether the stack is quiet: every accepted order terminal, nothing left
/// in an outbox, a provider call queue, a pick queue or a message queue, and
/// every consumer group's offsets committed up to the end of its topics (a
/// consumer commits what it handled every half second, so an order can be
/// terminal while the event after it is still being applied or committed).
pub async fn quiet(stack: &Stack, history: &[Placement]) -> Result<bool> {
    let orders = orders(stack).await?;
    let open = accepted(history)
        .filter(|id| !orders.get(*id).is_some_and(|(_, status)| terminal(status)))
        .count();
    Ok(open == 0 && backlog(stack).await?.is_empty() && lag(stack).await?.iter().all(|(_, l)| *l == 0))
}

fn terminal(status: &str) -> bool {
    status == "SHIPPED" || status == "CANCELLED"
}

fn accepted(history: &[Placement]) -> impl Iterator<Item = &String> {
    history.iter().filter_map(|p| match &p.outcome {
        Outcome::Accepted { order_id, .. } => Some(order_id),
        _ => None,
    })
}

/// Work left anywhere: `what (service): count` for each non-empty queue.
async fn backlog(stack: &Stack) -> Result<Vec<String>> {
    let mut left = Vec::new();
    let queues: [(&str, &str, &str); 4] = [
        ("payment", "provider calls", "SELECT count(*) FROM provider_calls"),
        (
            "warehouse",
            "pick tasks",
            "SELECT count(*) FROM pick_tasks WHERE status NOT IN ('SHIPPED', 'CANCELLED')",
        ),
        (
            "notification",
            "queued messages",
            "SELECT count(*) FROM notifications WHERE status NOT IN ('SENT', 'DEAD')",
        ),
        (
            "notification",
            "dead messages",
            "SELECT count(*) FROM notifications WHERE status = 'DEAD'",
        ),
    ];
    for (service, _) in SERVICES {
        let mut db = connect(stack, service).await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&mut db)
            .await?;
        if n > 0 {
            left.push(format!("unpublished outbox rows ({service}): {n}"));
        }
        for (s, what, sql) in queues {
            if s == service {
                let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut db).await?;
                if n > 0 {
                    left.push(format!("{what} ({service}): {n}"));
                }
            }
        }
    }
    Ok(left)
}

/// Checks every invariant; `before` is the stock before the load, `faults`
/// when the faults were active, `epoch` the wall-clock time the run (and
/// its seconds) started.
pub async fn all(
    stack: &Stack,
    history: &[Placement],
    before: &Stock,
    faults: &[Injected],
    epoch: SystemTime,
) -> Result<Vec<Verdict>> {
    let orders = orders(stack).await?;
    Ok(vec![
        terminal_states(history, &orders),
        idempotency(history, &orders),
        one_authorisation(stack, &orders).await?,
        stock_conserved(stack, before, history, &orders).await?,
        one_message(stack, &orders).await?,
        streams_in_order(stack).await?,
        queues_empty(stack).await?,
        analytics_agrees(stack, &orders).await?,
        traces_whole(stack, history, &orders, faults, epoch).await?,
    ])
}

/// I1: every order answered 201 is SHIPPED or CANCELLED.
fn terminal_states(history: &[Placement], orders: &HashMap<String, (String, String)>) -> Verdict {
    let mut broken = Vec::new();
    let mut checked = 0;
    for id in accepted(history) {
        checked += 1;
        match orders.get(id) {
            None => broken.push(format!("{id}: answered 201, unknown to the order service")),
            Some((_, status)) if !terminal(status) => broken.push(format!("{id}: {status}")),
            Some(_) => {}
        }
    }
    Verdict::new(
        "I1",
        "every order answered 201 reaches SHIPPED or CANCELLED",
        checked,
        broken,
    )
}

/// I2: one order per (customer, Idempotency-Key) at most; a refused
/// placement made none; an unanswered one made zero or one.
fn idempotency(history: &[Placement], orders: &HashMap<String, (String, String)>) -> Verdict {
    let mut broken = Vec::new();
    let mut keys_per_customer: BTreeMap<&str, usize> = BTreeMap::new();
    let mut accepted_ids = BTreeSet::new();
    for p in history {
        *keys_per_customer.entry(&p.customer).or_default() += 1;
        if let Outcome::Accepted { order_id, .. } = &p.outcome {
            if !accepted_ids.insert(order_id.as_str()) {
                broken.push(format!("{order_id}: answered 201 to two placements"));
            }
        }
    }
    let mut orders_per_customer: BTreeMap<&str, usize> = BTreeMap::new();
    for (customer, _) in orders.values() {
        *orders_per_customer.entry(customer).or_default() += 1;
    }
    for (customer, keys) in &keys_per_customer {
        let refused = history
            .iter()
            .filter(|p| p.customer == *customer && matches!(p.outcome, Outcome::Refused { .. }))
            .count();
        let made = orders_per_customer.get(customer).copied().unwrap_or(0);
        if made > keys - refused {
            broken.push(format!(
                "{customer}: {made} orders from {keys} keys of which {refused} were refused"
            ));
        }
    }
    Verdict::new(
        "I2",
        "at most one order per (customer, Idempotency-Key); a refused placement makes none",
        history.len(),
        broken,
    )
}

/// I3: at most one authorisation per order; every authorisation of a
/// cancelled order voided; and the provider's ledger equals the payment
/// streams: it holds money for exactly the authorisations recorded and not
/// voided (no approval left dangling, none recorded it does not hold).
async fn one_authorisation(stack: &Stack, orders: &HashMap<String, (String, String)>) -> Result<Verdict> {
    let mut db = connect(stack, "payment").await?;
    let rows = sqlx::query(
        "SELECT order_id,
                count(*) FILTER (WHERE event_type = 'PaymentAuthorized'),
                count(*) FILTER (WHERE event_type = 'PaymentVoided')
         FROM events GROUP BY order_id",
    )
    .fetch_all(&mut db)
    .await?;
    let mut broken = Vec::new();
    for r in &rows {
        let (id, authorised, voided): (String, i64, i64) = (r.get(0), r.get(1), r.get(2));
        if authorised > 1 {
            broken.push(format!("{id}: {authorised} authorisations"));
        }
        let cancelled = orders.get(&id).is_some_and(|(_, s)| s == "CANCELLED");
        if cancelled && authorised > voided {
            broken.push(format!(
                "{id}: cancelled with {authorised} authorisations and {voided} voids"
            ));
        }
        if !cancelled && voided > 0 {
            broken.push(format!(
                "{id}: not cancelled ({:?}) but voided",
                orders.get(&id).map(|o| &o.1)
            ));
        }
    }

    // The payment ids the streams say are held: authorised, not voided.
    let mut recorded = BTreeSet::new();
    let mut released = BTreeSet::new();
    let envelopes: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT envelope FROM events WHERE event_type IN ('PaymentAuthorized', 'PaymentVoided')",
    )
    .fetch_all(&mut db)
    .await?;
    for bytes in &envelopes {
        match omnisaga_proto::v1::Envelope::decode(bytes.as_slice())?.payload {
            Some(Payload::PaymentAuthorized(a)) => {
                recorded.insert(a.payment_id);
            }
            Some(Payload::PaymentVoided(v)) => {
                released.insert(v.payment_id);
            }
            _ => {}
        }
    }
    let held_by_streams: BTreeSet<&String> = recorded.difference(&released).collect();
    let held_by_provider: BTreeSet<String> = sqlx::query_scalar(
        "SELECT payment_id FROM provider_ledger WHERE outcome = 'APPROVED' AND voided_at IS NULL",
    )
    .fetch_all(&mut db)
    .await?
    .into_iter()
    .collect();
    for id in &held_by_provider {
        if !held_by_streams.contains(id) {
            let why = if recorded.contains(id) {
                "voided in the payment stream"
            } else {
                "never recorded"
            };
            broken.push(format!("{id}: the provider holds money for it, {why} (dangling)"));
        }
    }
    for id in &held_by_streams {
        if !held_by_provider.contains(*id) {
            broken.push(format!(
                "{id}: recorded as authorised, the provider holds nothing"
            ));
        }
    }
    Ok(Verdict::new(
        "I3",
        "at most one authorisation per order; a cancelled order's authorisation is voided; the provider holds money for exactly the authorisations the payment streams hold",
        rows.len() + held_by_provider.len(),
        broken,
    ))
}

/// I4: stock is conserved: what left the shelf is what the shipped orders
/// held, nothing stays reserved once every order is over, nothing is
/// negative.
async fn stock_conserved(
    stack: &Stack,
    before: &Stock,
    history: &[Placement],
    orders: &HashMap<String, (String, String)>,
) -> Result<Verdict> {
    let after = stock(stack).await?;
    let mut expected: BTreeMap<&str, i64> = before
        .iter()
        .map(|(sku, (_, _, shipped))| (sku.as_str(), *shipped))
        .collect();
    // An unanswered placement may have made an order all the same: its
    // idempotency key says which.
    let mut db = connect(stack, "order").await?;
    let made: HashMap<(String, String), String> = sqlx::query_as::<_, (String, String, String)>(
        "SELECT customer_id, key, order_id::text FROM idempotency_keys",
    )
    .fetch_all(&mut db)
    .await?
    .into_iter()
    .map(|(customer, key, order)| ((customer, key), order))
    .collect();
    for p in history {
        let order_id = match &p.outcome {
            Outcome::Accepted { order_id, .. } => Some(order_id),
            Outcome::Unknown { .. } => made.get(&(p.customer.clone(), p.key.clone())),
            Outcome::Refused { .. } => None,
        };
        if let Some(order_id) = order_id {
            if orders.get(order_id).is_some_and(|(_, s)| s == "SHIPPED") {
                *expected.entry(p.sku.as_str()).or_default() += i64::from(p.quantity);
            }
        }
    }
    let mut broken = Vec::new();
    for (sku, (on_hand0, _, shipped0)) in before {
        let Some((on_hand, reserved, shipped)) = after.get(sku) else {
            broken.push(format!("{sku}: gone from the stock table"));
            continue;
        };
        if on_hand0 + shipped0 != on_hand + shipped {
            broken.push(format!(
                "{sku}: on hand + shipped was {} and is {} (on hand {on_hand}, shipped {shipped})",
                on_hand0 + shipped0,
                on_hand + shipped
            ));
        }
        let want = expected.get(sku.as_str()).copied().unwrap_or(*shipped0);
        if *shipped != want {
            broken.push(format!(
                "{sku}: {shipped} shipped, the shipped orders held {}",
                want - shipped0
            ));
        }
        if *reserved != 0 {
            broken.push(format!("{sku}: {reserved} still reserved"));
        }
        if *on_hand < 0 || *reserved < 0 {
            broken.push(format!("{sku}: negative stock"));
        }
    }
    Ok(Verdict::new(
        "I4",
        "stock conserved: shipped = what the shipped orders held, on hand + shipped unchanged, nothing left reserved, never negative",
        before.len(),
        broken,
    ))
}

/// I5: one customer message per (order, template); a shipped order's
/// customer was told it shipped; a cancelled order's never was.
async fn one_message(stack: &Stack, orders: &HashMap<String, (String, String)>) -> Result<Verdict> {
    let mut db = connect(stack, "notification").await?;
    let rows = sqlx::query("SELECT order_id::text, template, count(*), bool_or(status = 'SENT') FROM notifications GROUP BY 1, 2")
        .fetch_all(&mut db)
        .await?;
    let mut broken = Vec::new();
    let mut shipped_told = BTreeSet::new();
    for r in &rows {
        let (id, template, n, sent): (String, String, i64, bool) = (r.get(0), r.get(1), r.get(2), r.get(3));
        if n > 1 {
            broken.push(format!("{id}: {n} '{template}' messages"));
        }
        if template == "shipped" {
            if sent {
                shipped_told.insert(id.clone());
            }
            if orders.get(&id).is_some_and(|(_, s)| s == "CANCELLED") {
                broken.push(format!("{id}: cancelled, yet told it shipped"));
            }
        }
    }
    for (id, (_, status)) in orders {
        if status == "SHIPPED" && !shipped_told.contains(id) {
            broken.push(format!("{id}: shipped, customer never told"));
        }
    }
    Ok(Verdict::new(
        "I5",
        "one message per (order, kind); shipped orders' customers told, cancelled ones not told 'shipped'",
        rows.len(),
        broken,
    ))
}

/// I6: every stream in every service is versions 1..n without gaps, and
/// each consumer applied each partition's records in offset order.
async fn streams_in_order(stack: &Stack) -> Result<Verdict> {
    let mut broken = Vec::new();
    let mut checked = 0;
    for (service, _) in SERVICES {
        let mut db = connect(stack, service).await?;
        let rows = sqlx::query(
            "SELECT stream_id, count(*), min(version), max(version) FROM events GROUP BY stream_id",
        )
        .fetch_all(&mut db)
        .await?;
        checked += rows.len();
        for r in &rows {
            let (stream, n, min, max): (String, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
            if min != 1 || max != n {
                broken.push(format!(
                    "{service} stream {stream}: {n} events, versions {min}..{max}"
                ));
            }
        }
        // Within one consumer and partition, a later offset was never
        // applied in an earlier transaction.
        let reordered = sqlx::query(
            "SELECT consumer, topic, partition, \"offset\" FROM (
               SELECT consumer, topic, partition, \"offset\", processed_at,
                      max(processed_at) OVER (PARTITION BY consumer, topic, partition ORDER BY \"offset\"
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
               FROM inbox) x
             WHERE processed_at < before LIMIT 5",
        )
        .fetch_all(&mut db)
        .await?;
        for r in &reordered {
            let (consumer, topic, partition, offset): (String, String, i32, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            broken.push(format!(
                "{service}: {consumer} applied {topic}[{partition}]@{offset} before an earlier offset"
            ));
        }
    }
    Ok(Verdict::new(
        "I6",
        "streams gapless (versions 1..n); each partition applied in offset order",
        checked,
        broken,
    ))
}

/// I7: nothing left to do: outboxes published, queues empty, every
/// consumer group caught up, every published event in each consumer's inbox.
async fn queues_empty(stack: &Stack) -> Result<Verdict> {
    let mut broken = backlog(stack).await?;
    let lag = lag(stack).await?;
    broken.extend(
        lag.iter()
            .filter(|(_, l)| *l > 0)
            .map(|(g, l)| format!("{g}: lag {l}")),
    );
    let mut checked = lag.len();
    // Event ids each owner published (its outbox keeps a day's rows) against
    // each consumer's inbox.
    let mut inboxes: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for (service, _) in SERVICES {
        let mut db = connect(stack, service).await?;
        let ids: Vec<String> = sqlx::query_scalar("SELECT event_id::text FROM inbox")
            .fetch_all(&mut db)
            .await?;
        inboxes.insert(service, ids.into_iter().collect());
    }
    for topic in catalog().topics() {
        let mut db = connect(stack, &topic.owner).await?;
        let payloads: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = $1")
            .bind(topic.name(stack.topic_prefix()))
            .fetch_all(&mut db)
            .await?;
        let mut published = Vec::new();
        for payload in payloads {
            match omnisaga_proto::v1::Envelope::decode(payload.as_slice()) {
                Ok(envelope) => published.push(envelope),
                Err(_) => broken.push(format!("{}: an outbox row that does not decode", topic.owner)),
            }
        }
        for consumer in &topic.consumers {
            let Some(inbox) = inboxes.get(consumer.as_str()) else {
                continue;
            };
            // A consumer passes over the types it does not act on without an
            // inbox row: judge it on the types it acted on at least once.
            let handled: BTreeSet<&str> = published
                .iter()
                .filter(|e| inbox.contains(&e.event_id))
                .map(|e| e.event_type.as_str())
                .collect();
            for e in published
                .iter()
                .filter(|e| handled.contains(e.event_type.as_str()))
            {
                checked += 1;
                if !inbox.contains(&e.event_id) {
                    broken.push(format!(
                        "{} {} of {}: not in {consumer}'s inbox",
                        e.event_type, e.event_id, e.order_id
                    ));
                }
            }
        }
    }
    Ok(Verdict::new(
        "I7",
        "outboxes published, queues empty, consumer groups caught up, every event in each consumer's inbox",
        checked,
        broken,
    ))
}

/// Each service's consumer group's lag over the topics it consumes.
async fn lag(stack: &Stack) -> Result<Vec<(String, i64)>> {
    let kafka = stack.kafka.clone();
    let prefix = stack.topic_prefix().to_owned();
    tokio::task::spawn_blocking(move || {
        let timeout = std::time::Duration::from_secs(10);
        let mut out = Vec::new();
        for (service, _) in SERVICES {
            let group = format!("{prefix}{service}");
            let consumer: BaseConsumer = kafka.admin_client().set("group.id", &group).create()?;
            let mut tpl = TopicPartitionList::new();
            for topic in catalog().consumed_by(service) {
                let name = topic.name(&prefix);
                let metadata = consumer.fetch_metadata(Some(&name), timeout)?;
                for t in metadata.topics() {
                    for p in t.partitions() {
                        tpl.add_partition(&name, p.id());
                    }
                }
            }
            let committed = consumer.committed_offsets(tpl, timeout)?;
            let mut lag = 0;
            for e in committed.elements() {
                let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
                let at = e.offset().to_raw().filter(|o| *o >= 0).unwrap_or(0);
                lag += (high - at).max(0);
            }
            out.push((group, lag));
        }
        anyhow::Ok(out)
    })
    .await?
}

/// I8: analytics counts the orders the order service holds, shipped and
/// cancelled alike.
async fn analytics_agrees(stack: &Stack, orders: &HashMap<String, (String, String)>) -> Result<Verdict> {
    let mut db = connect(stack, "analytics").await?;
    let rows = sqlx::query(
        "SELECT order_id::text, placed_at IS NOT NULL, shipped_at IS NOT NULL, cancelled_at IS NOT NULL FROM fact_orders",
    )
    .fetch_all(&mut db)
    .await?;
    let seen: HashMap<String, (bool, bool, bool)> = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let mut broken = Vec::new();
    for (id, (_, status)) in orders {
        match seen.get(id) {
            None => broken.push(format!(
                "{id}: {status} at the order service, unknown to analytics"
            )),
            Some((placed, shipped, cancelled)) => {
                if !placed || (status == "SHIPPED") != *shipped || (status == "CANCELLED") != *cancelled {
                    broken.push(format!(
                        "{id}: {status} at the order service; analytics placed {placed}, shipped {shipped}, cancelled {cancelled}"
                    ));
                }
            }
        }
    }
    Ok(Verdict::new(
        "I8",
        "analytics holds every order with the order service's outcome",
        orders.len(),
        broken,
    ))
}

/// How many fault-free shipped orders I9 looks at (the latest ones, whose
/// traces the viewer still holds: it keeps the last `TRACES_MAX`).
const TRACES_SAMPLED: usize = 100;

/// When each order's life in the stack ended, in seconds since `epoch`:
/// the last time any service recorded one of its events or processed one
/// from a topic.
async fn settled(stack: &Stack, epoch: SystemTime) -> Result<HashMap<String, f64>> {
    let epoch = epoch
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut order_of = HashMap::new();
    let mut last: HashMap<String, f64> = HashMap::new();
    let mut processed = Vec::new();
    for (service, _) in SERVICES {
        let mut db = connect(stack, service).await?;
        let recorded = sqlx::query(
            "SELECT event_id::text, order_id, extract(epoch FROM recorded_at)::float8 FROM events",
        )
        .fetch_all(&mut db)
        .await?;
        for row in recorded {
            let (event, order, at): (String, String, f64) = (row.get(0), row.get(1), row.get(2));
            let latest = last.entry(order.clone()).or_insert(f64::MIN);
            *latest = latest.max(at - epoch);
            order_of.insert(event, order);
        }
        let rows = sqlx::query("SELECT event_id::text, extract(epoch FROM processed_at)::float8 FROM inbox")
            .fetch_all(&mut db)
            .await?;
        processed.extend(rows.iter().map(|r| (r.get::<String, _>(0), r.get::<f64, _>(1))));
    }
    for (event, at) in processed {
        if let Some(order) = order_of.get(&event) {
            let latest = last.entry(order.clone()).or_insert(f64::MIN);
            *latest = latest.max(at - epoch);
        }
    }
    Ok(last)
}

/// How long after a service's last step for an order I9 still counts a
/// fault against it: the services export spans every 500 ms, and a
/// process killed before its next export takes that batch with it.
const EXPORT_MARGIN: f64 = 2.0;

/// I9: at least 99% of the shipped orders whose whole life (placement to
/// the last service's last step for it, plus the span export margin) no
/// fault touched (nor the 5 s after one healed) form one connected trace
/// through all five services.
async fn traces_whole(
    stack: &Stack,
    history: &[Placement],
    orders: &HashMap<String, (String, String)>,
    faults: &[Injected],
    epoch: SystemTime,
) -> Result<Verdict> {
    let settled = settled(stack, epoch).await?;
    let calm = |placed: f64, order: &str| {
        let end = settled.get(order).map_or(f64::MAX, |at| at + EXPORT_MARGIN);
        faults.iter().all(|f| end < f.began || placed > f.healed + 5.0)
    };
    let mut sample: Vec<(&str, &str)> = history
        .iter()
        .rev()
        .filter_map(|p| match &p.outcome {
            Outcome::Accepted { order_id, trace_id } if !trace_id.is_empty() && calm(p.at, order_id) => {
                Some((order_id.as_str(), trace_id.as_str()))
            }
            _ => None,
        })
        .filter(|(id, _)| orders.get(*id).is_some_and(|(_, s)| s == "SHIPPED"))
        .take(TRACES_SAMPLED)
        .collect();
    sample.reverse();
    let catalog = Catalog::under(stack.topic_prefix());
    let http = reqwest::Client::new();
    let mut broken = Vec::new();
    // The services export spans in batches every 500 ms: the last orders'
    // traces may still be on their way. They all get the same 10 s, not
    // 10 s each: a trace that is not whole by then stays broken.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    for (order, trace_id) in &sample {
        let problems = loop {
            let problems = match http
                .get(format!("{}/api/traces/{trace_id}", stack.traces_url))
                .send()
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    let body: serde_json::Value = resp.json().await.unwrap_or_default();
                    trace_problems(&body["data"][0], order, &catalog)
                }
                Ok(resp) => vec![format!("the viewer answers {}", resp.status())],
                Err(e) => vec![format!("the viewer: {e}")],
            };
            if problems.is_empty() || tokio::time::Instant::now() > deadline {
                break problems;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        };
        if !problems.is_empty() {
            broken.push(format!("{order} (trace {trace_id}): {}", problems.join("; ")));
        }
    }
    // At most 1% may be broken; the verdict lists them all either way.
    let allowed = sample.len() / 100;
    let mut verdict = Verdict::new(
        "I9",
        "at least 99% of the shipped orders no fault touched from placement to their last step form one whole trace through all five services",
        sample.len(),
        broken.clone(),
    );
    verdict.holds = broken.len() <= allowed && !sample.is_empty();
    if sample.is_empty() {
        verdict
            .counterexamples
            .push("no fault-free shipped order to look at".into());
    }
    Ok(verdict)
}
