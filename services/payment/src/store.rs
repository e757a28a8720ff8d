//! The payment database beside the streams (which the runtime's aggregate
//! executor keeps, see `crate::wire`): the payment view support reads.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Payment;

/// Writes the order's payment as support sees it.
pub async fn update_view(conn: &mut PgConnection, order_id: Uuid, p: &Payment) -> Result<(), sqlx::Error> {
    let status = match (p.cancelled, p.voided, p.authorized.is_some()) {
        (_, true, _) => "VOIDED",
        (_, _, true) => "AUTHORIZED",
        (true, _, _) => "CANCELLED",
        _ => "FAILED",
    };
    let total = p.amount.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO payment_view (order_id, status, attempts, amount_minor, currency) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (order_id) DO UPDATE SET status = $2, attempts = $3, updated_at = now()",
    )
    .bind(order_id)
    .bind(status)
    .bind(p.attempts as i32)
    .bind(total.minor_units)
    .bind(&total.currency)
    .execute(conn)
    .await?;
    Ok(())
}
