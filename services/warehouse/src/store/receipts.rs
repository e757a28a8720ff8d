//! Goods received: the `stock` rows' units on hand and the `GoodsReceived`
//! events that record them, in one transaction, so stock levels are a
//! projection of the warehouse's events (`crate::projection`). A SKU's
//! receipts are the stream `stock-<sku>`, published on no topic.

use omnisaga_proto::v1::{envelope::Payload, GoodsReceived};
use omnisaga_runtime::event::{self, EventMeta};
use prost::Message;
use sqlx::{PgConnection, PgPool};

/// Where received goods came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The catalog seeded at start, for a SKU the warehouse did not know.
    Seed,
    /// A batch of `POST /v1/stock/batch`.
    Import,
    /// What a SKU had on hand before goods received were events: recorded
    /// once, at start, for a `stock` row whose SKU has no receipts.
    Opening,
}

impl Receipt {
    /// Its name in `GoodsReceived.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Receipt::Seed => "seed",
            Receipt::Import => "import",
            Receipt::Opening => "opening",
        }
    }
}

/// The stream of a SKU's receipts.
pub fn stock_stream(sku: &str) -> String {
    format!("stock-{sku}")
}

/// Adds received units to what is on hand, SKU by SKU in SKU order, and
/// records them, in two statements however many SKUs: the rows are locked
/// in the order a reservation of several SKUs locks them, and before the
/// receipts are appended, so the versions the append reads are the last. A
/// SKU not stocked before starts at its quantity.
pub async fn receive_stock(tx: &mut PgConnection, received: &[(&str, i64)]) -> Result<(), sqlx::Error> {
    let mut received = received.to_vec();
    received.sort_by(|a, b| a.0.cmp(b.0));
    let (skus, quantities): (Vec<&str>, Vec<i64>) = received.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO stock (sku, on_hand)
         SELECT * FROM UNNEST($1::text[], $2::bigint[]) ORDER BY 1
         ON CONFLICT (sku) DO UPDATE SET on_hand = stock.on_hand + EXCLUDED.on_hand",
    )
    .bind(&skus)
    .bind(&quantities)
    .execute(&mut *tx)
    .await?;
    record(tx, &received, Receipt::Import).await
}

/// Adds seed stock for SKUs the warehouse does not know yet, with their
/// receipts, in one transaction: a restart seeds nothing twice.
pub async fn seed_stock(pool: &PgPool, items: &[(String, i64)]) -> Result<(), sqlx::Error> {
    let (skus, quantities): (Vec<&str>, Vec<i64>) = items.iter().map(|(s, q)| (s.as_str(), *q)).unzip();
    let mut tx = pool.begin().await?;
    let seeded: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO stock (sku, on_hand)
         SELECT * FROM UNNEST($1::text[], $2::bigint[]) ORDER BY 1
         ON CONFLICT (sku) DO NOTHING RETURNING sku, on_hand",
    )
    .bind(&skus)
    .bind(&quantities)
    .fetch_all(&mut *tx)
    .await?;
    let seeded: Vec<(&str, i64)> = seeded.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    record(&mut tx, &seeded, Receipt::Seed).await?;
    tx.commit().await
}

/// Records an opening balance, what is on hand, for every SKU whose stock
/// has no receipts (counted before goods received were events), once: a
/// SKU with one has receipts from then on. Returns the SKUs opened.
pub async fn open_balances(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let unrecorded: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.sku, s.on_hand FROM stock s
         WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = 'stock-' || s.sku)
         ORDER BY s.sku FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    if unrecorded.is_empty() {
        return Ok(vec![]);
    }
    let opened: Vec<(&str, i64)> = unrecorded.iter().map(|(s, q)| (s.as_str(), *q)).collect();
    record(&mut tx, &opened, Receipt::Opening).await?;
    tx.commit().await?;
    Ok(unrecorded.into_iter().map(|(sku, _)| sku).collect())
}

/// Appends a `GoodsReceived` for each of `received` at the end of its SKU's
/// stream, in one statement. The caller holds the SKUs' `stock` rows
/// locked, as every writer of their streams does. An opening balance is
/// appended only to a stream still empty when it is (another instance
/// starting at once may have opened it meanwhile).
async fn record(
    conn: &mut PgConnection,
    received: &[(&str, i64)],
    source: Receipt,
) -> Result<(), sqlx::Error> {
    if received.is_empty() {
        return Ok(());
    }
    let now = omnisaga_runtime::clock::now();
    let (mut streams, mut ids, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
    for (sku, quantity) in received {
        let payload = Payload::GoodsReceived(GoodsReceived {
            sku: (*sku).to_owned(),
            quantity: *quantity,
            source: source.as_str().to_owned(),
        });
        let env = event::envelope("warehouse", "", payload, &EventMeta::default(), now);
        streams.push(stock_stream(sku));
        ids.push(event::event_id(&env).expect("a new envelope's id is a UUID"));
        bodies.push(env.encode_to_vec());
    }
    sqlx::query(
        "INSERT INTO events (stream_id, version, event_id, event_type, order_id, occurred_at, envelope)
         SELECT e.stream_id,
                coalesce((SELECT max(v.version) FROM events v WHERE v.stream_id = e.stream_id), 0) + 1,
                e.id, 'GoodsReceived', '', $4, e.envelope
         FROM unnest($1::text[], $2::uuid[], $3::bytea[]) AS e(stream_id, id, envelope)
         WHERE NOT $5 OR NOT EXISTS (SELECT 1 FROM events v WHERE v.stream_id = e.stream_id)",
    )
    .bind(&streams)
    .bind(&ids)
    .bind(&bodies)
    .bind(now)
    .bind(source == Receipt::Opening)
    .execute(conn)
    .await?;
    Ok(())
}
