//! Each payment answer and void as its event tells it (`fact_payments`),
//! and a customer's payments read back a page at a time, newest first: the
//! customer is the one the order's placement names (`fact_orders`), joined
//! when read, so a payment recorded before its order's placement is found
//! once the placement arrives.

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::{envelope::Payload, Money};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::Received;

/// What a payment event tells besides its stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFact<'a> {
    pub payment_id: &'a str,
    /// The attempt's number; none for a void.
    pub attempt: Option<i32>,
    /// `authorized`, `declined` or `voided`.
    pub outcome: &'static str,
    pub amount_minor_units: i64,
    pub currency: &'a str,
    /// A decline's reason; empty otherwise.
    pub reason: &'a str,
}

/// The payment `payload` tells of, if it is a payment answer or a void.
pub fn payment_of(payload: &Payload) -> Option<PaymentFact<'_>> {
    fn amount(m: &Option<Money>) -> (i64, &str) {
        m.as_ref()
            .map_or((0, ""), |m| (m.minor_units, m.currency.as_str()))
    }
    let attempt = |n: u32| Some(i32::try_from(n).unwrap_or(i32::MAX));
    let (payment_id, attempt, outcome, (amount_minor_units, currency), reason) = match payload {
        Payload::PaymentAuthorized(p) => (
            &p.payment_id,
            attempt(p.attempt),
            "authorized",
            amount(&p.amount),
            "",
        ),
        Payload::PaymentFailed(p) => (
            &p.payment_id,
            attempt(p.attempt),
            "declined",
            amount(&p.amount),
            p.reason.as_str(),
        ),
        Payload::PaymentVoided(p) => (&p.payment_id, None, "voided", amount(&p.amount), ""),
        _ => return None,
    };
    Some(PaymentFact {
        payment_id,
        attempt,
        outcome,
        amount_minor_units,
        currency,
        reason,
    })
}

/// Records the payments among `staged` (new stage events).
pub(super) async fn record(conn: &mut PgConnection, staged: &[&Received<'_>]) -> Result<(), sqlx::Error> {
    let paid: Vec<(&Received, &PaymentFact)> = staged
        .iter()
        .filter_map(|e| e.payment.as_ref().map(|p| (*e, p)))
        .collect();
    if paid.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO fact_payments (event_id, order_id, payment_id, attempt, outcome, amount_minor_units,
                                    currency, reason, occurred_at, day)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::bigint[],
                              $7::text[], $8::text[], $9::timestamptz[], $10::date[])
         ON CONFLICT DO NOTHING",
    )
    .bind(paid.iter().map(|(e, _)| e.event_id).collect::<Vec<_>>())
    .bind(paid.iter().map(|(e, _)| e.order_id).collect::<Vec<_>>())
    .bind(paid.iter().map(|(_, p)| p.payment_id).collect::<Vec<_>>())
    .bind(paid.iter().map(|(_, p)| p.attempt).collect::<Vec<_>>())
    .bind(paid.iter().map(|(_, p)| p.outcome).collect::<Vec<_>>())
    .bind(paid.iter().map(|(_, p)| p.amount_minor_units).collect::<Vec<_>>())
    .bind(paid.iter().map(|(_, p)| p.currency).collect::<Vec<_>>())
    .bind(paid.iter().map(|(_, p)| p.reason).collect::<Vec<_>>())
    .bind(paid.iter().map(|(e, _)| e.occurred_at).collect::<Vec<_>>())
    .bind(
        paid.iter()
            .map(|(e, _)| e.occurred_at.date_naive())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// One payment of a customer's, as read back.
#[derive(Debug, Clone)]
pub struct CustomerPayment {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub payment_id: String,
    pub attempt: Option<i32>,
    pub outcome: String,
    pub amount_minor_units: i64,
    pub currency: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Up to `limit` of `customer`'s payments, newest first, those before
/// `before` (the last one of the previous page: its time and event id).
pub async fn customer_payments(
    conn: &mut PgConnection,
    customer: &str,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<CustomerPayment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.event_id, p.order_id, p.payment_id, p.attempt, p.outcome, p.amount_minor_units, p.currency,
                p.reason, p.occurred_at
         FROM fact_payments p JOIN fact_orders o USING (order_id)
         WHERE o.customer_id = $1
           AND ($2::timestamptz IS NULL OR (p.occurred_at, p.event_id) < ($2, $3::uuid))
         ORDER BY p.occurred_at DESC, p.event_id DESC
         LIMIT $4",
    )
    .bind(customer)
    .bind(before.map(|b| b.0))
    .bind(before.map(|b| b.1))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CustomerPayment {
            event_id: r.get(0),
            order_id: r.get(1),
            payment_id: r.get(2),
            attempt: r.get(3),
            outcome: r.get(4),
            amount_minor_units: r.get(5),
            currency: r.get(6),
            reason: r.get(7),
            at: r.get(8),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use omnisaga_proto::v1::{PaymentAuthorized, PaymentFailed, PaymentVoided, StockReserved};

    use super::*;

    #[test]
    fn payment_answers_and_voids_are_payments_and_nothing_else_is() {
        let eur = Some(Money {
            minor_units: 1250,
            currency: "EUR".into(),
        });
        let authorized = Payload::PaymentAuthorized(PaymentAuthorized {
            payment_id: "p-2".into(),
            amount: eur.clone(),
            attempt: 2,
            ..Default::default()
        });
        let p = payment_of(&authorized).unwrap();
        assert_eq!(
            (
                p.payment_id,
                p.attempt,
                p.outcome,
                p.amount_minor_units,
                p.currency,
                p.reason
            ),
            ("p-2", Some(2), "authorized", 1250, "EUR", "")
        );
        let failed = Payload::PaymentFailed(PaymentFailed {
            payment_id: "p-1".into(),
            attempt: 1,
            reason: "card_declined".into(),
            ..Default::default()
        });
        let p = payment_of(&failed).unwrap();
        assert_eq!(
            (p.outcome, p.reason, p.amount_minor_units, p.currency),
            ("declined", "card_declined", 0, "")
        );
        let voided = Payload::PaymentVoided(PaymentVoided {
            payment_id: "p-2".into(),
            amount: eur,
            ..Default::default()
        });
        assert_eq!(payment_of(&voided).unwrap().attempt, None);
        assert_eq!(
            payment_of(&Payload::StockReserved(StockReserved::default())),
            None
        );
    }
}
