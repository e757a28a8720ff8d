//! What the checker reads from a quiet stack, as plain data: every
//! service's database ([`observe`]), the records of every topic
//! ([`super::broker`]) and the order in which the consumers' transactions
//! committed ([`super::commits`]). The invariants ([`super::check`]) are
//! pure functions of these observations and the load's history, so each
//! can be tested on a planted counterexample without a stack.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use omnisaga_proto::v1::{envelope::Payload, Envelope};
use omnisaga_runtime::catalog::catalog;
use prost::Message as _;
use sqlx::{Connection as _, PgConnection, Row as _};

use omnisaga_stack::{pg_server, Stack, SERVICES};

/// Stock per SKU: `(on_hand, reserved, shipped)`, on hand and reserved as
/// the warehouse's `stock_levels` view counts them (shipped goods left both).
pub type Stock = BTreeMap<String, (i64, i64, i64)>;

/// An order as the order service holds it.
#[derive(Debug, Clone, Default)]
pub struct Order {
    pub customer: String,
    pub status: String,
    /// Its total in minor units, from its `OrderPlaced`.
    pub total: Option<i64>,
}

/// An authorisation or a void, from the payment streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payment {
    Authorised {
        order_id: String,
        payment_id: String,
        amount: i64,
    },
    Voided {
        order_id: String,
        payment_id: String,
    },
}

/// One published event (an outbox row), decoded.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// The service that published it (the topic's owner).
    pub owner: String,
    /// The topic's name in the catalog (without the stack's prefix).
    pub topic: String,
    pub event_id: String,
    pub event_type: String,
    pub order_id: String,
}

/// One record read off a topic.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The topic's name in the catalog (without the stack's prefix); a
    /// dead-letter topic's ends in `.dlq`.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    /// The envelope's event id; `None` when the payload is no envelope.
    pub event_id: Option<String>,
    /// The payload is the fault suite's own poison ([`super::dead_letters::POISON`],
    /// or a [`super::dead_letters::bogus`] record).
    pub poison: bool,
    /// On a dead-letter topic: `(consumer, source topic, partition,
    /// offset)` of the record it is a copy of, from its headers.
    pub dead_lettered: Option<(String, String, i32, i64)>,
}

/// A record applied by a consumer (its inbox row), and when its
/// transaction's commit was first seen: the number of the poll of the
/// inbox that first saw the row ([`super::commits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub service: String,
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub seen: u64,
}

/// Everything the invariants judge, read once the stack is quiet.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// The order service's orders by id.
    pub orders: HashMap<String, Order>,
    /// The order service's idempotency keys: `(customer, key) -> order id`.
    pub keys: HashMap<(String, String), String>,
    pub payments: Vec<Payment>,
    /// The payment ids the provider holds money for (approved, not voided).
    pub ledger_held: BTreeSet<String>,
    pub stock: Stock,
    /// The notification service's messages: `(order, template, sent)`.
    pub messages: Vec<(String, String, bool)>,
    /// Its `NotificationSent` events: `(order, template)`, one per send recorded.
    pub sent: Vec<(String, String)>,
    /// The ids of the messages it recorded sent.
    pub sent_ids: BTreeSet<String>,
    /// What reached the chat channel (the stack's webhook sink), when the
    /// stack sends there.
    pub channel: Option<omnisaga_stack::webhook_sink::Receipts>,
    /// Every stream of every service: `(service, stream, events, min version, max version)`.
    pub streams: Vec<(String, String, i64, i64, i64)>,
    /// Each event in its service's event store: `(service, event id) -> (stream, version)`.
    pub stored: HashMap<(String, String), (String, i64)>,
    pub published: Vec<Published>,
    /// Outbox rows whose payload is no envelope: `(owner, topic)`.
    pub undecodable: Vec<(String, String)>,
    /// The event ids in each service's inbox.
    pub inboxes: HashMap<String, BTreeSet<String>>,
    /// Work left: `what (service): count` for each non-empty queue.
    pub backlog: Vec<String>,
    /// Each consumer group's lag over the topics it consumes.
    pub lag: Vec<(String, i64)>,
    /// Analytics' orders: `id -> (placed, shipped, cancelled)`.
    pub analytics: HashMap<String, (bool, bool, bool)>,
    /// Every record of every topic, dead-letter topics included.
    pub records: Vec<Record>,
    /// The consumers' applied records, with when their commit was seen.
    pub applied: Vec<Applied>,
    /// Keys parked behind a dead letter: `(service, key)`.
    pub parked: Vec<(String, String)>,
}

pub(super) async fn connect(stack: &Stack, service: &str) -> Result<PgConnection> {
    let url = format!("{}/{}", pg_server(), stack.database(service));
    PgConnection::connect(&url)
        .await
        .with_context(|| format!("Failed to connect to {url}"))
}

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

/// The orders the order service holds, by id (their totals not read).
pub async fn orders(stack: &Stack) -> Result<HashMap<String, Order>> {
    let mut db = connect(stack, "order").await?;
    let rows = sqlx::query("SELECT order_id::text, customer_id, status FROM order_view")
        .fetch_all(&mut db)
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let order = Order {
                customer: r.get(1),
                status: r.get(2),
                total: None,
            };
            (r.get::<String, _>(0), order)
        })
        .collect())
}

/// Reads every database of `stack` (the records and commits are read
/// elsewhere and left empty).
pub async fn databases(stack: &Stack) -> Result<Observations> {
    let mut seen = Observations {
        orders: orders(stack).await?,
        stock: stock(stack).await?,
        backlog: backlog(stack).await?,
        ..Observations::default()
    };
    let mut db = connect(stack, "order").await?;
    let keys: Vec<(String, String, String)> =
        sqlx::query_as("SELECT customer_id, key, order_id::text FROM idempotency_keys")
            .fetch_all(&mut db)
            .await?;
    seen.keys = keys.into_iter().map(|(c, k, o)| ((c, k), o)).collect();
    for (service, _) in SERVICES {
        let mut db = connect(stack, service).await?;
        events(&mut db, service, &mut seen).await?;
        let inbox: Vec<String> = sqlx::query_scalar("SELECT event_id::text FROM inbox")
            .fetch_all(&mut db)
            .await?;
        seen.inboxes
            .insert(service.to_owned(), inbox.into_iter().collect());
        let parked: Vec<String> = sqlx::query_scalar("SELECT message_key FROM parked")
            .fetch_all(&mut db)
            .await?;
        seen.parked
            .extend(parked.into_iter().map(|key| (service.to_owned(), key)));
    }
    for topic in catalog().topics() {
        let mut db = connect(stack, &topic.owner).await?;
        let payloads: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = $1")
            .bind(topic.name(stack.topic_prefix()))
            .fetch_all(&mut db)
            .await?;
        for payload in payloads {
            match Envelope::decode(payload.as_slice()) {
                Ok(e) => seen.published.push(Published {
                    owner: topic.owner.clone(),
                    topic: topic.base_name().to_owned(),
                    event_id: e.event_id,
                    event_type: e.event_type,
                    order_id: e.order_id,
                }),
                Err(_) => seen
                    .undecodable
                    .push((topic.owner.clone(), topic.base_name().to_owned())),
            }
        }
    }
    let mut db = connect(stack, "payment").await?;
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT payment_id FROM provider_ledger WHERE outcome = 'APPROVED' AND voided_at IS NULL",
    )
    .fetch_all(&mut db)
    .await?;
    seen.ledger_held = held.into_iter().collect();
    let mut db = connect(stack, "notification").await?;
    let rows = sqlx::query("SELECT order_id::text, template, status = 'SENT' FROM notifications")
        .fetch_all(&mut db)
        .await?;
    seen.messages = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let sent: Vec<String> =
        sqlx::query_scalar("SELECT notification_id::text FROM notifications WHERE status = 'SENT'")
            .fetch_all(&mut db)
            .await?;
    seen.sent_ids = sent.into_iter().collect();
    let mut db = connect(stack, "analytics").await?;
    let rows = sqlx::query(
        "SELECT order_id::text, placed_at IS NOT NULL, shipped_at IS NOT NULL, cancelled_at IS NOT NULL FROM fact_orders",
    )
    .fetch_all(&mut db)
    .await?;
    seen.analytics = rows
        .iter()
        .map(|r| (r.get::<String, _>(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    Ok(seen)
}

/// A service's event store: its streams' spans, where each event id
/// sits, and the events the invariants read the payloads of, from the
/// service that owns them (orders' totals, authorisations and voids,
/// messages sent): other services keep copies of some.
async fn events(db: &mut PgConnection, service: &str, seen: &mut Observations) -> Result<()> {
    let rows =
        sqlx::query("SELECT stream_id, count(*), min(version), max(version) FROM events GROUP BY stream_id")
            .fetch_all(&mut *db)
            .await?;
    seen.streams.extend(
        rows.iter()
            .map(|r| (service.to_owned(), r.get(0), r.get(1), r.get(2), r.get(3))),
    );
    let rows = sqlx::query(
        "SELECT event_id::text, stream_id, version,
                CASE WHEN event_type = ANY($1) THEN envelope END
         FROM events",
    )
    .bind(match service {
        "order" => vec!["OrderPlaced"],
        "payment" => vec!["PaymentAuthorized", "PaymentVoided"],
        "notification" => vec!["NotificationSent"],
        _ => vec![],
    })
    .fetch_all(&mut *db)
    .await?;
    for r in &rows {
        seen.stored
            .insert((service.to_owned(), r.get(0)), (r.get(1), r.get(2)));
        let Some(bytes) = r.get::<Option<Vec<u8>>, _>(3) else {
            continue;
        };
        match Envelope::decode(bytes.as_slice())?.payload {
            Some(Payload::OrderPlaced(p)) => {
                if let Some(order) = seen.orders.get_mut(&p.order_id) {
                    order.total = p.total.map(|m| m.minor_units);
                }
            }
            Some(Payload::PaymentAuthorized(a)) => seen.payments.push(Payment::Authorised {
                order_id: a.order_id,
                payment_id: a.payment_id,
                amount: a.amount.map_or(0, |m| m.minor_units),
            }),
            Some(Payload::PaymentVoided(v)) => seen.payments.push(Payment::Voided {
                order_id: v.order_id,
                payment_id: v.payment_id,
            }),
            Some(Payload::NotificationSent(n)) => seen.sent.push((n.order_id, n.template)),
            _ => {}
        }
    }
    Ok(())
}

/// Work left anywhere: `what (service): count` for each non-empty queue.
pub(crate) async fn backlog(stack: &Stack) -> Result<Vec<String>> {
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
            "SELECT count(*) FROM notifications WHERE status = 'QUEUED'",
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
