//! The order database beyond the event store: catalog, idempotency keys and
//! the order view.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

pub mod escalations;
pub mod find;
pub mod live;

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct CatalogItem {
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub currency: String,
}

pub async fn catalog(pool: &PgPool) -> Result<Vec<CatalogItem>, sqlx::Error> {
    let rows = sqlx::query("SELECT sku, name, unit_price_minor, currency FROM catalog ORDER BY sku")
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(catalog_row).collect())
}

/// What a placement needs before its transaction, read in one statement:
/// an earlier request's answer under the same idempotency key, the
/// catalog's entries for the request's SKUs, and an order number, taken
/// only when there is no earlier answer and every SKU is in the catalog (a
/// replay of a placement that committed takes none).
pub struct Placement {
    pub earlier: Option<StoredResponse>,
    pub catalog: Vec<CatalogItem>,
    pub order_number: Option<String>,
}

pub async fn prepare_placement(
    pool: &PgPool,
    customer_id: &str,
    key: &str,
    skus: &[String],
) -> Result<Placement, sqlx::Error> {
    let row = sqlx::query(
        "WITH earlier AS (
             SELECT request_hash, response FROM idempotency_keys WHERE customer_id = $2 AND key = $3
         ), found AS (
             SELECT sku, name, unit_price_minor, currency FROM catalog WHERE sku = ANY($1) ORDER BY sku
         ), number AS (
             SELECT nextval('order_number_seq') AS n
             WHERE NOT EXISTS (SELECT 1 FROM earlier)
               AND (SELECT count(*) FROM found) = (SELECT count(DISTINCT s) FROM unnest($1::text[]) s)
         )
         SELECT array(SELECT sku FROM found), array(SELECT name FROM found),
                array(SELECT unit_price_minor FROM found), array(SELECT currency FROM found),
                (SELECT n FROM number), (SELECT request_hash FROM earlier), (SELECT response FROM earlier)",
    )
    .bind(skus)
    .bind(customer_id)
    .bind(key)
    .fetch_one(pool)
    .await?;
    let (names, prices, currencies): (Vec<String>, Vec<i64>, Vec<String>) =
        (row.get(1), row.get(2), row.get(3));
    let catalog = row
        .get::<Vec<String>, _>(0)
        .into_iter()
        .zip(names)
        .zip(prices)
        .zip(currencies)
        .map(|(((sku, name), unit_price_minor), currency)| CatalogItem {
            sku,
            name,
            unit_price_minor,
            currency,
        })
        .collect();
    let earlier = match (row.get::<Option<Vec<u8>>, _>(5), row.get::<Option<Value>, _>(6)) {
        (Some(request_hash), Some(response)) => Some(StoredResponse {
            request_hash,
            response,
        }),
        _ => None,
    };
    Ok(Placement {
        earlier,
        catalog,
        order_number: row.get::<Option<i64>, _>(4).map(|n| format!("OS-{n}")),
    })
}

fn catalog_row(r: sqlx::postgres::PgRow) -> CatalogItem {
    CatalogItem {
        sku: r.get(0),
        name: r.get(1),
        unit_price_minor: r.get(2),
        currency: r.get(3),
    }
}

/// Upserts catalog entries (the seed); prices change, nothing is deleted.
pub async fn upsert_catalog(pool: &PgPool, items: &[CatalogItem]) -> Result<(), sqlx::Error> {
    for item in items {
        sqlx::query(
            "INSERT INTO catalog (sku, name, unit_price_minor, currency) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sku) DO UPDATE SET name = $2, unit_price_minor = $3, currency = $4",
        )
        .bind(&item.sku)
        .bind(&item.name)
        .bind(item.unit_price_minor)
        .bind(&item.currency)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Upserts a batch of catalog entries in one statement, in `tx`.
pub async fn upsert_catalog_batch(tx: &mut PgConnection, items: &[CatalogItem]) -> Result<(), sqlx::Error> {
    let column = |f: fn(&CatalogItem) -> &str| items.iter().map(f).collect::<Vec<_>>();
    let prices: Vec<i64> = items.iter().map(|i| i.unit_price_minor).collect();
    sqlx::query(
        "INSERT INTO catalog (sku, name, unit_price_minor, currency)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[])
         ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, unit_price_minor = EXCLUDED.unit_price_minor,
             currency = EXCLUDED.currency",
    )
    .bind(column(|i| &i.sku))
    .bind(column(|i| &i.name))
    .bind(&prices)
    .bind(column(|i| &i.currency))
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn next_order_number(pool: &PgPool) -> Result<String, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT nextval('order_number_seq')")
        .fetch_one(pool)
        .await?;
    Ok(format!("OS-{n}"))
}

/// What an earlier request with the same key stored.
pub struct StoredResponse {
    pub request_hash: Vec<u8>,
    pub response: Value,
}

/// Claims `key` for this request in `tx`; `None` when claimed, else what the
/// earlier request stored (waiting for it to commit if it is in flight).
pub async fn claim_idempotency_key(
    tx: &mut PgConnection,
    customer_id: &str,
    key: &str,
    request_hash: &[u8],
    order_id: Uuid,
    response: &Value,
) -> Result<Option<StoredResponse>, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (customer_id, key, request_hash, order_id, response)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(customer_id)
    .bind(key)
    .bind(request_hash)
    .bind(order_id)
    .bind(response)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT request_hash, response FROM idempotency_keys WHERE customer_id = $1 AND key = $2",
    )
    .bind(customer_id)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    Ok(Some(StoredResponse {
        request_hash: row.get(0),
        response: row.get(1),
    }))
}

pub struct NewOrderView<'a> {
    pub order_id: Uuid,
    pub order_number: &'a str,
    pub customer_id: &'a str,
    /// mobile, web, pos or marketplace, as the API names it.
    pub channel: &'a str,
    pub status: &'a str,
    pub trace_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
    pub at: DateTime<Utc>,
}

pub async fn insert_view(tx: &mut PgConnection, v: NewOrderView<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_view (order_id, order_number, customer_id, status, trace_id, created_at, updated_at, traceparent, channel)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)",
    )
    .bind(v.order_id)
    .bind(v.order_number)
    .bind(v.customer_id)
    .bind(v.status)
    .bind(v.trace_id)
    .bind(v.at)
    .bind(v.traceparent)
    .bind(v.channel)
    .execute(tx)
    .await?;
    Ok(())
}

/// What a command changed in an order's view row ([`sync_view`]).
pub struct ViewUpdate<'a> {
    pub status: &'a str,
    pub delay_noticed: bool,
    /// The stage it was last escalated in.
    pub escalated: Option<&'a str>,
    /// The time of the last event that changed status, escalation or
    /// delay notice.
    pub updated_at: DateTime<Utc>,
    /// Its payment deadline, when it began awaiting payment (kept once set).
    pub payment_deadline_at: Option<DateTime<Utc>>,
    /// When its escalation changed, if it did.
    pub escalated_at: Option<DateTime<Utc>>,
}

/// Keeps the order view in step with the order, as a rebuild of the view
/// makes it (crate::projection): every time is an event's. One statement.
pub async fn sync_view(tx: &mut PgConnection, order_id: Uuid, v: ViewUpdate<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE order_view SET status = $2, updated_at = $3, delay_noticed = $4,
                payment_deadline_at = coalesce(payment_deadline_at, $5),
                escalated_status = $6, escalated_at = coalesce($7, escalated_at)
         WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(v.status)
    .bind(v.updated_at)
    .bind(v.delay_noticed)
    .bind(v.payment_deadline_at)
    .bind(v.escalated)
    .bind(v.escalated_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// An order's view row as its stream gives it (crate::projection).
pub struct ViewRow<'a> {
    pub order_id: Uuid,
    pub order_number: &'a str,
    pub customer_id: &'a str,
    pub channel: &'a str,
    pub status: &'a str,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub payment_deadline_at: Option<DateTime<Utc>>,
    pub delay_noticed: bool,
    pub escalated_status: Option<&'a str>,
    pub escalated_at: Option<DateTime<Utc>>,
}

/// Writes `v` whole, over the row of its order if there is one (a
/// rebuild's fold; the columns no event decides are left as they are).
pub async fn put_view(conn: &mut PgConnection, v: ViewRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_view (order_id, order_number, customer_id, channel, status, created_at,
                                 updated_at, payment_deadline_at, delay_noticed, escalated_status, escalated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (order_id) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
             payment_deadline_at = EXCLUDED.payment_deadline_at, delay_noticed = EXCLUDED.delay_noticed,
             escalated_status = EXCLUDED.escalated_status, escalated_at = EXCLUDED.escalated_at",
    )
    .bind(v.order_id)
    .bind(v.order_number)
    .bind(v.customer_id)
    .bind(v.channel)
    .bind(v.status)
    .bind(v.created_at)
    .bind(v.updated_at)
    .bind(v.payment_deadline_at)
    .bind(v.delay_noticed)
    .bind(v.escalated_status)
    .bind(v.escalated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the order's view adds to its stream for a reader: the trace that
/// placed it and its payment deadline.
pub async fn view_notes<'e, E: sqlx::PgExecutor<'e>>(
    ex: E,
    order_id: Uuid,
) -> Result<(Option<String>, Option<DateTime<Utc>>), sqlx::Error> {
    let notes = sqlx::query_as("SELECT trace_id, payment_deadline_at FROM order_view WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(ex)
        .await?;
    Ok(notes.unwrap_or_default())
}

/// The customer who placed `order_id`, if it exists.
pub async fn customer_of(pool: &PgPool, order_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT customer_id FROM order_view WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}

/// One order in a customer's list.
#[derive(sqlx::FromRow)]
pub struct OrderRow {
    pub order_id: Uuid,
    pub order_number: String,
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Up to `limit` of `customer_id`'s orders placed before `before` (all when
/// `None`), newest first: order ids are UUIDv7, so their order is the
/// order they were placed in.
pub async fn orders_of(
    pool: &PgPool,
    customer_id: &str,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, order_number, status, created_at, updated_at FROM order_view
         WHERE customer_id = $1 AND ($2::uuid IS NULL OR order_id < $2)
         ORDER BY order_id DESC LIMIT $3",
    )
    .bind(customer_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Orders whose payment deadline passed while they still wait for payment.
pub async fn past_payment_deadline(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<(Uuid, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, traceparent FROM order_view WHERE status = 'AWAITING_PAYMENT' AND payment_deadline_at <= now()
         ORDER BY payment_deadline_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many orders wait for payment past their deadline (should be none for long).
pub async fn count_past_payment_deadline(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM order_view WHERE status = 'AWAITING_PAYMENT' AND payment_deadline_at <= now()",
    )
    .fetch_one(pool)
    .await
}

/// The statuses an order passes through on its way to `SHIPPED` that no
/// deadline of the order service ends: each waits on another service.
pub const OPEN_STATUSES: [&str; 3] = ["PLACED", "PAID", "READY_FOR_SHIPMENT"];

/// How many orders of each of [`OPEN_STATUSES`] have not changed for
/// longer than `after` (an index on open orders keeps this cheap).
pub async fn count_stuck(
    pool: &PgPool,
    after: std::time::Duration,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM order_view
         WHERE status IN ('PLACED', 'PAID', 'READY_FOR_SHIPMENT')
           AND updated_at < now() - $1 * interval '1 millisecond'
         GROUP BY status",
    )
    .bind(after.as_millis() as f64)
    .fetch_all(pool)
    .await?;
    Ok(OPEN_STATUSES
        .iter()
        .map(|s| {
            let n = rows.iter().find(|(status, _)| status == s).map_or(0, |(_, n)| *n);
            ((*s).to_owned(), n)
        })
        .collect())
}

/// Orders with no payment answer for longer than `after`, not yet told so: (id, waited ms).
pub async fn payment_delayed(
    pool: &PgPool,
    after: std::time::Duration,
    limit: i64,
) -> Result<Vec<(Uuid, i64, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, (extract(epoch FROM now() - created_at) * 1000)::bigint, traceparent FROM order_view
         WHERE status = 'PLACED' AND NOT delay_noticed AND created_at <= now() - $1 * interval '1 millisecond'
         ORDER BY created_at LIMIT $2",
    )
    .bind(after.as_millis() as f64)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many orders are open: placed and not yet shipped or cancelled (for
/// reconciliation's `nothing_stuck`).
pub async fn count_open(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM order_view WHERE status IN ('PLACED', 'AWAITING_PAYMENT', 'PAID', 'READY_FOR_SHIPMENT')",
    )
    .fetch_one(conn)
    .await
}

/// One open order that should have moved on: (order, status, last change,
/// payment deadline).
pub type StuckOrder = (Uuid, String, DateTime<Utc>, Option<DateTime<Utc>>);

/// Up to `limit` orders, oldest change first, awaiting payment past a
/// deadline before `until` or PLACED, PAID or READY_FOR_SHIPMENT unchanged
/// since before `unchanged_before`.
pub async fn stuck_before(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    unchanged_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<StuckOrder>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, status, updated_at, payment_deadline_at FROM order_view
         WHERE (status = 'AWAITING_PAYMENT' AND payment_deadline_at < $1)
            OR (status IN ('PLACED', 'PAID', 'READY_FOR_SHIPMENT') AND updated_at < $2)
         ORDER BY updated_at LIMIT $3",
    )
    .bind(until)
    .bind(unchanged_before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Up to `limit` orders shipped in `[since, until)`, in the order they shipped.
pub async fn shipped_between(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT order_id FROM order_view
         WHERE status = 'SHIPPED' AND updated_at >= $1 AND updated_at < $2
         ORDER BY updated_at LIMIT $3",
    )
    .bind(since)
    .bind(until)
    .bind(limit)
    .fetch_all(conn)
    .await
}
