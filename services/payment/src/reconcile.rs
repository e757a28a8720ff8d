//! `POST /v1/admin/reconcile`: the payment service's part of
//! reconciliation (`omnisaga_runtime::reconcile`), read in one read-only
//! snapshot: its outbox; the provider's ledger against the payment streams
//! for every order the provider answered in the window; and every order
//! shipped in the window (the order service's list) holding exactly one
//! standing authorisation of its total, which the provider holds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::reconcile::{
    self, ReconcileReport, ReconcileRequest, LEDGER_MATCHES_STREAMS, MAX_COUNTEREXAMPLES, SHIPPED_PAID,
};
use sqlx::{PgConnection, PgPool};

use crate::store::ledger;

/// What the payment streams say of one order: each authorisation's payment
/// id and amount, and the voided payment ids.
#[derive(Debug, Default, Clone)]
pub struct Streams {
    pub authorised: Vec<(String, i64)>,
    pub voided: BTreeSet<String>,
}

impl Streams {
    /// The authorisations that stand (not voided), with their amounts.
    fn standing(&self) -> Vec<(&str, i64)> {
        self.authorised
            .iter()
            .filter(|(p, _)| !self.voided.contains(p))
            .map(|(p, a)| (p.as_str(), *a))
            .collect()
    }
}

/// Runs the payment service's checks over `req`'s window.
pub async fn check(pool: &PgPool, req: &ReconcileRequest) -> Result<ReconcileReport, sqlx::Error> {
    let mut report = ReconcileReport::new("payment");
    let mut tx = reconcile::snapshot(pool).await?;
    reconcile::outbox(&mut tx, req.until, &mut report).await?;
    let answered = answered_in(&mut tx, req.since, req.until).await?;
    let shipped: BTreeMap<String, i64> = req
        .shipped
        .iter()
        .map(|s| (s.order_id.to_string(), s.total_minor))
        .collect();
    let mut orders: BTreeSet<String> = answered.clone();
    orders.extend(shipped.keys().cloned());
    let orders: Vec<String> = orders.into_iter().collect();
    let streams = streams(&mut tx, &orders).await?;
    let ids: Vec<String> = streams
        .values()
        .flat_map(|s| s.authorised.iter().map(|(p, _)| p.clone()))
        .collect();
    let held = held(&mut tx, req, &ids).await?;
    tx.commit().await?;
    let none = Streams::default();
    let mut held_by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for id in &held {
        if let Some(order) = order_of(id) {
            held_by.entry(order).or_default().insert(id);
        }
    }
    let nothing = BTreeSet::new();
    let held_of = |order: &str| held_by.get(order).unwrap_or(&nothing);
    report.checked(LEDGER_MATCHES_STREAMS, answered.len());
    for order in &answered {
        for (subject, detail) in ledger_vs_streams(held_of(order), streams.get(order).unwrap_or(&none)) {
            report.broken(LEDGER_MATCHES_STREAMS, Some(order.clone()), subject, detail);
        }
    }
    report.checked(SHIPPED_PAID, shipped.len());
    for (order, total) in &shipped {
        if let Some(detail) = paid(held_of(order), streams.get(order).unwrap_or(&none), *total) {
            report.broken(
                SHIPPED_PAID,
                Some(order.clone()),
                format!("order {order}"),
                detail,
            );
        }
    }
    report.counterexamples.truncate(3 * MAX_COUNTEREXAMPLES as usize);
    Ok(report)
}

/// The orders whose payments the provider answered in the window (its
/// ledger's payment ids are `pay-<order id>-<attempt>`).
async fn answered_in(
    conn: &mut PgConnection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<BTreeSet<String>, sqlx::Error> {
    let ids = ledger::answered_between(conn, since, until).await?;
    Ok(ids
        .iter()
        .filter_map(|p| order_of(p))
        .map(str::to_owned)
        .collect())
}

/// The order of a provider payment id `pay-<order id>-<attempt>`.
fn order_of(payment_id: &str) -> Option<&str> {
    let rest = payment_id.strip_prefix("pay-")?;
    rest.rsplit_once('-').map(|(order, _)| order)
}

/// Each order's authorisations and voids, from its payment stream.
async fn streams(
    conn: &mut PgConnection,
    orders: &[String],
) -> Result<BTreeMap<String, Streams>, sqlx::Error> {
    let mut found: BTreeMap<String, Streams> = BTreeMap::new();
    for e in reconcile::events_of(conn, orders, &["PaymentAuthorized", "PaymentVoided"]).await? {
        match e.payload {
            Some(Payload::PaymentAuthorized(a)) => found
                .entry(a.order_id)
                .or_default()
                .authorised
                .push((a.payment_id, a.amount.map_or(0, |m| m.minor_units))),
            Some(Payload::PaymentVoided(v)) => {
                found.entry(v.order_id).or_default().voided.insert(v.payment_id);
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The payment ids the provider holds money for (approved, not voided)
/// among those it answered in the window and `ids`.
async fn held(
    conn: &mut PgConnection,
    req: &ReconcileRequest,
    ids: &[String],
) -> Result<BTreeSet<String>, sqlx::Error> {
    let rows = ledger::held_among(conn, req.since, req.until, ids).await?;
    Ok(rows.into_iter().collect())
}

/// `ledger_matches_streams` for one order: the provider holds money for
/// exactly its standing authorisations, and for one at most.
pub fn ledger_vs_streams(held: &BTreeSet<&str>, streams: &Streams) -> Vec<(String, String)> {
    let mut broken = Vec::new();
    let recorded: BTreeSet<&str> = streams.authorised.iter().map(|(p, _)| p.as_str()).collect();
    let standing: BTreeSet<&str> = streams.standing().into_iter().map(|(p, _)| p).collect();
    for id in held.difference(&standing) {
        let why = if recorded.contains(id) {
            "voided in the payment stream"
        } else {
            "never recorded in the payment stream"
        };
        broken.push((
            format!("payment {id}"),
            format!("the provider holds money for it, {why}"),
        ));
    }
    for id in standing.difference(held) {
        broken.push((
            format!("payment {id}"),
            "recorded as authorised, the provider holds nothing".to_owned(),
        ));
    }
    if held.len() > 1 {
        broken.push((
            "provider ledger".to_owned(),
            format!("the provider holds {} authorisations for one order", held.len()),
        ));
    }
    broken
}

/// `shipped_paid` for one order of `total`: why it is not paid, if it is not.
pub fn paid(held: &BTreeSet<&str>, streams: &Streams, total: i64) -> Option<String> {
    match streams.standing().as_slice() {
        [(id, amount)] if *amount != total => Some(format!(
            "shipped on an authorisation ({id}) of {amount}, its total is {total}"
        )),
        [(id, _)] if !held.contains(id) => Some(format!("shipped on {id}, which the provider does not hold")),
        [_] => None,
        standing => Some(format!("shipped with {} standing authorisations", standing.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(authorised: &[(&str, i64)], voided: &[&str]) -> Streams {
        Streams {
            authorised: authorised.iter().map(|(p, a)| ((*p).to_owned(), *a)).collect(),
            voided: voided.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn a_payment_id_names_its_order() {
        let order = "0193c0de-7c4e-7d2a-9f10-2b3c4d5e6f70";
        assert_eq!(order_of(&format!("pay-{order}-12")), Some(order));
        assert_eq!(order_of("card-1"), None);
    }

    #[test]
    fn the_ledger_must_hold_exactly_the_standing_authorisations() {
        let one = streams(&[("pay-a-1", 100)], &[]);
        assert!(ledger_vs_streams(&["pay-a-1"].into(), &one).is_empty());
        // A second approval the streams never recorded: a double charge.
        let double = ledger_vs_streams(&["pay-a-1", "pay-a-2"].into(), &one);
        assert_eq!(double.len(), 2, "{double:?}");
        assert!(double[0].1.contains("never recorded"), "{double:?}");
        // Voided in the stream, still held by the provider.
        let voided = streams(&[("pay-a-1", 100)], &["pay-a-1"]);
        assert!(ledger_vs_streams(&["pay-a-1"].into(), &voided)[0]
            .1
            .contains("voided"));
        // Recorded, not held.
        assert!(ledger_vs_streams(&BTreeSet::new(), &one)[0]
            .1
            .contains("holds nothing"));
    }

    #[test]
    fn a_shipped_order_holds_one_standing_authorisation_of_its_total() {
        let one = streams(&[("pay-a-1", 100)], &[]);
        assert_eq!(paid(&["pay-a-1"].into(), &one, 100), None);
        assert!(paid(&["pay-a-1"].into(), &one, 90)
            .unwrap()
            .contains("its total is 90"));
        assert!(paid(&BTreeSet::new(), &one, 100)
            .unwrap()
            .contains("does not hold"));
        assert!(paid(&BTreeSet::new(), &Streams::default(), 100)
            .unwrap()
            .contains("0 standing"));
    }
}
