//! The figures the API and the dashboard read: each channel's counts,
//! payment answers, the time to a stage, an order's stages, orders per
//! minute, the fulfilment histogram and the orders stuck at a stage.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::{
    domain::{Kept, Stage},
    window::Window,
};

/// The orders of a [`Window`] (`$1` from, `$2` to) among `fact_orders o`:
/// every order when it is open at both ends.
const IN_WINDOW: &str =
    "($1::timestamptz IS NULL OR o.placed_at >= $1) AND ($2::timestamptz IS NULL OR o.placed_at < $2)";

/// What one channel's orders reached: how many reached each stage, and
/// their payment outcomes (`fact_orders.payment_outcome`).
#[derive(Debug, Clone, Default)]
pub struct ChannelCounts {
    pub channel: String,
    pub placed: i64,
    pub paid: i64,
    pub ready_for_shipment: i64,
    pub shipped: i64,
    pub cancelled: i64,
    /// Orders with an authorised payment.
    pub authorized: i64,
    /// Orders whose every payment attempt so far failed.
    pub declined: i64,
    /// Orders with an authorisation voided after a cancellation.
    pub voided: i64,
}

/// Every channel's counts added up.
pub fn totals(channels: &[ChannelCounts]) -> ChannelCounts {
    channels
        .iter()
        .fold(ChannelCounts::default(), |t, c| ChannelCounts {
            channel: "all".into(),
            placed: t.placed + c.placed,
            paid: t.paid + c.paid,
            ready_for_shipment: t.ready_for_shipment + c.ready_for_shipment,
            shipped: t.shipped + c.shipped,
            cancelled: t.cancelled + c.cancelled,
            authorized: t.authorized + c.authorized,
            declined: t.declined + c.declined,
            voided: t.voided + c.voided,
        })
}

/// The counts of each channel's orders placed in `window` (`unknown` for
/// orders whose placement has not arrived, in an open window only), by
/// channel name.
pub async fn channel_counts(
    conn: &mut PgConnection,
    window: &Window,
) -> Result<Vec<ChannelCounts>, sqlx::Error> {
    let sql = format!(
        "SELECT coalesce(channel, 'unknown'), count(placed_at), count(paid_at), count(ready_at),
                count(shipped_at), count(cancelled_at),
                count(*) FILTER (WHERE payment_outcome = 'authorized'),
                count(*) FILTER (WHERE payment_outcome = 'declined'),
                count(*) FILTER (WHERE payment_voids > 0)
         FROM fact_orders o WHERE {IN_WINDOW} GROUP BY 1 ORDER BY 1"
    );
    let rows = sqlx::query(&sql)
        .bind(window.from)
        .bind(window.to)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ChannelCounts {
            channel: r.get(0),
            placed: r.get(1),
            paid: r.get(2),
            ready_for_shipment: r.get(3),
            shipped: r.get(4),
            cancelled: r.get(5),
            authorized: r.get(6),
            declined: r.get(7),
            voided: r.get(8),
        })
        .collect())
}

/// How many payment attempts of the orders placed in `window` were
/// authorised and how many failed.
pub async fn payment_answers(conn: &mut PgConnection, window: &Window) -> Result<(i64, i64), sqlx::Error> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE stage = 'paid'), count(*) FILTER (WHERE stage = 'payment_declined')
         FROM stage_events s WHERE stage IN ('paid', 'payment_declined')
           AND (($1::timestamptz IS NULL AND $2::timestamptz IS NULL)
                OR EXISTS (SELECT 1 FROM fact_orders o WHERE o.order_id = s.order_id AND {IN_WINDOW}))"
    );
    let r = sqlx::query(&sql)
        .bind(window.from)
        .bind(window.to)
        .fetch_one(conn)
        .await?;
    Ok((r.get(0), r.get(1)))
}

/// The distribution of the milliseconds from placement to a stage over the
/// orders that reached both; no percentile without any.
pub struct Percentiles {
    pub count: i64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

/// The distribution of the time from placement to `stage`, over the
/// orders placed in `window`, all or one channel's.
pub async fn time_to(
    conn: &mut PgConnection,
    stage: Stage,
    channel: Option<&str>,
    window: &Window,
) -> Result<Percentiles, sqlx::Error> {
    let Kept::FirstTime(column) = stage.kept() else {
        return Ok(Percentiles {
            count: 0,
            p50: None,
            p95: None,
            p99: None,
            max: None,
        });
    };
    // `column` comes from the fixed list of `Stage`, never from input.
    let sql = format!(
        "SELECT count(*),
                percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                max(ms)
         FROM (SELECT extract(epoch FROM {column} - placed_at)::float8 * 1000 AS ms
               FROM fact_orders o WHERE {column} IS NOT NULL AND placed_at IS NOT NULL AND {IN_WINDOW}
                 AND ($3::text IS NULL OR coalesce(channel, 'unknown') = $3)) d"
    );
    let r = sqlx::query(&sql)
        .bind(window.from)
        .bind(window.to)
        .bind(channel)
        .fetch_one(conn)
        .await?;
    Ok(Percentiles {
        count: r.get(0),
        p50: r.get(1),
        p95: r.get(2),
        p99: r.get(3),
        max: r.get(4),
    })
}

/// One order as analytics knows it: its channel, payment outcome and stage
/// events with the seconds since the previous one (`fact_stages`).
pub struct OrderStages {
    pub channel: String,
    pub payment_outcome: String,
    pub stages: Vec<StageEvent>,
}

pub struct StageEvent {
    pub stage: String,
    pub at: DateTime<Utc>,
    pub seconds_since_previous: Option<f64>,
}

/// `order_id`'s stages, or `None` when analytics has no event of it.
pub async fn order_stages(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<OrderStages>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT channel, payment_outcome, stage, occurred_at, seconds_since_previous
         FROM fact_stages WHERE order_id = $1 ORDER BY occurred_at, event_id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(OrderStages {
        channel: first.get(0),
        payment_outcome: first.get(1),
        stages: rows
            .iter()
            .map(|r| StageEvent {
                stage: r.get(2),
                at: r.get(3),
                seconds_since_previous: r.get(4),
            })
            .collect(),
    }))
}

/// Orders placed in each of the last `minutes` minutes (the current one
/// last), by the minute they were placed in.
pub async fn orders_per_minute(
    conn: &mut PgConnection,
    minutes: i32,
) -> Result<Vec<(DateTime<Utc>, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT m, count(o.order_id)
         FROM generate_series(date_trunc('minute', now()) - ($1 - 1) * interval '1 minute',
                              date_trunc('minute', now()), interval '1 minute') m
         LEFT JOIN fact_orders o ON o.placed_at >= m AND o.placed_at < m + interval '1 minute'
         GROUP BY m ORDER BY m",
    )
    .bind(minutes)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The seconds from placement to shipment of every shipped order, in
/// `bins` equal bins from 0 to the longest: the longest and each bin's count.
pub async fn fulfilment_histogram(
    conn: &mut PgConnection,
    bins: i32,
) -> Result<(f64, Vec<i64>), sqlx::Error> {
    let rows = sqlx::query(
        "WITH d AS (SELECT greatest(0, extract(epoch FROM shipped_at - placed_at))::float8 AS s
                    FROM fact_orders WHERE shipped_at IS NOT NULL AND placed_at IS NOT NULL),
              top AS (SELECT max(s) AS hi FROM d)
         SELECT least(width_bucket(d.s, 0, top.hi, $1), $1), top.hi, count(*)
         FROM d, top WHERE top.hi > 0 GROUP BY 1, 2",
    )
    .bind(bins)
    .fetch_all(conn)
    .await?;
    let mut counts = vec![0; bins.max(0) as usize];
    let mut longest = 0.0;
    for r in rows {
        let bin: i32 = r.get(0);
        longest = r.get(1);
        if let Some(count) = counts.get_mut((bin - 1).max(0) as usize) {
            *count += r.get::<i64, _>(2);
        }
    }
    Ok((longest, counts))
}

/// How many orders have been at their latest stage of the happy path
/// (`placed`, `paid`, `ready_for_shipment`) for longer than `seconds`,
/// neither shipped nor cancelled, by that stage.
pub async fn stuck_orders(conn: &mut PgConnection, seconds: f64) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT stage, count(*) FROM (
             SELECT CASE WHEN ready_at IS NOT NULL THEN 'ready_for_shipment'
                         WHEN paid_at IS NOT NULL THEN 'paid' ELSE 'placed' END AS stage,
                    greatest(placed_at, paid_at, ready_at) AS since
             FROM fact_orders
             WHERE placed_at IS NOT NULL AND shipped_at IS NULL AND cancelled_at IS NULL) o
         WHERE since < now() - $1 * interval '1 second'
         GROUP BY stage",
    )
    .bind(seconds)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
}
