//! The invariants of orders, keys, money and stock (I1 to I4): pure
//! functions of the load's history and what the databases hold.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{made_orders, terminal, Verdict};
use crate::{
    load::{Outcome, Placement},
    observe::{Observations, Payment, Stock},
};

/// I1: every order answered 201, and every order an unanswered placement
/// made after all (its key says so), is SHIPPED or CANCELLED.
pub fn terminal_states(history: &[Placement], seen: &Observations) -> Verdict {
    let mut broken = Vec::new();
    let made = made_orders(history, &seen.keys);
    for id in &made {
        match seen.orders.get(*id) {
            None => broken.push(format!("{id}: answered 201, unknown to the order service")),
            Some(o) if !terminal(&o.status) => broken.push(format!("{id}: {}", o.status)),
            Some(_) => {}
        }
    }
    Verdict::new(
        "I1",
        "every order answered 201 (or made by an unanswered placement) reaches SHIPPED or CANCELLED",
        made.len(),
        broken,
    )
}

/// I2, per Idempotency-Key: every order of the load's customers was made
/// by exactly one key the load sent; an answered placement's key holds
/// the order it was answered with (none for a refusal); no two placements
/// were answered with one order. An unanswered placement made zero or one.
pub fn idempotency(history: &[Placement], seen: &Observations) -> Verdict {
    let mut broken = Vec::new();
    let customers: BTreeSet<&str> = history.iter().map(|p| p.customer.as_str()).collect();
    let sent: BTreeSet<(&str, &str)> = history
        .iter()
        .map(|p| (p.customer.as_str(), p.key.as_str()))
        .collect();
    let mut keys_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for ((customer, key), order) in &seen.keys {
        if customers.contains(customer.as_str()) {
            keys_of.entry(order.as_str()).or_default().push(key.as_str());
        }
    }
    let mut checked = 0;
    for (id, order) in &seen.orders {
        if !customers.contains(order.customer.as_str()) {
            continue;
        }
        checked += 1;
        match keys_of.get(id.as_str()).map(Vec::as_slice) {
            None | Some([]) => broken.push(format!(
                "{id} ({}): an order no Idempotency-Key made (two orders for one key?)",
                order.customer
            )),
            Some([key]) if !sent.contains(&(order.customer.as_str(), *key)) => {
                broken.push(format!("{id}: made by key {key}, which the load never sent"))
            }
            Some([_]) => {}
            Some(keys) => broken.push(format!("{id}: held by {} keys: {keys:?}", keys.len())),
        }
    }
    let mut answered = BTreeSet::new();
    for p in history {
        checked += 1;
        let held = seen.keys.get(&(p.customer.clone(), p.key.clone()));
        match &p.outcome {
            Outcome::Accepted { order_id, .. } => {
                if !answered.insert(order_id.as_str()) {
                    broken.push(format!("{order_id}: answered 201 to two placements"));
                }
                if held != Some(order_id) {
                    broken.push(format!(
                        "key {}: answered {order_id}, the key holds {held:?}",
                        p.key
                    ));
                }
            }
            Outcome::Refused { status } => {
                if let Some(order) = held {
                    broken.push(format!("key {}: refused ({status}), yet made {order}", p.key));
                }
            }
            Outcome::Unknown { .. } => {}
        }
        if let Some(order) = held.filter(|o| !seen.orders.contains_key(*o)) {
            broken.push(format!(
                "key {}: holds {order}, unknown to the order service",
                p.key
            ));
        }
    }
    Verdict::new(
        "I2",
        "per Idempotency-Key: every order made by exactly one key the load sent; an answered key holds the order it was answered with, a refused one none",
        checked,
        broken,
    )
}

/// I3: at most one authorisation per order; a cancelled order's
/// authorisation voided, no void of another; every SHIPPED order holds
/// exactly one standing (authorised, not voided) authorisation of its
/// total; and the provider holds money for exactly the authorisations the
/// payment streams hold. (There is no capture yet: standing is authorised.)
pub fn one_authorisation(seen: &Observations) -> Verdict {
    // Per order: its authorisations (payment id, amount) and voids.
    type Payments<'a> = (Vec<(&'a str, i64)>, BTreeSet<&'a str>);
    let mut per_order: BTreeMap<&str, Payments> = BTreeMap::new();
    for p in &seen.payments {
        match p {
            Payment::Authorised {
                order_id,
                payment_id,
                amount,
            } => per_order
                .entry(order_id)
                .or_default()
                .0
                .push((payment_id, *amount)),
            Payment::Voided { order_id, payment_id } => {
                per_order.entry(order_id).or_default().1.insert(payment_id);
            }
        }
    }
    let mut broken = Vec::new();
    for (id, (authorised, voided)) in &per_order {
        let status = seen.orders.get(*id).map(|o| o.status.as_str());
        if authorised.len() > 1 {
            broken.push(format!("{id}: {} authorisations", authorised.len()));
        }
        let standing = authorised.iter().filter(|(p, _)| !voided.contains(p)).count();
        if status == Some("CANCELLED") && standing > 0 {
            broken.push(format!(
                "{id}: cancelled with {} authorisations and {} voids",
                authorised.len(),
                voided.len()
            ));
        }
        if status != Some("CANCELLED") && !voided.is_empty() {
            broken.push(format!("{id}: not cancelled ({status:?}) but voided"));
        }
    }
    let mut shipped = 0;
    for (id, order) in seen.orders.iter().filter(|(_, o)| o.status == "SHIPPED") {
        shipped += 1;
        let (authorised, voided) = per_order.get(id.as_str()).cloned().unwrap_or_default();
        let standing: Vec<i64> = authorised
            .iter()
            .filter(|(p, _)| !voided.contains(p))
            .map(|(_, amount)| *amount)
            .collect();
        match standing.as_slice() {
            [amount] if Some(*amount) == order.total => {}
            [amount] => broken.push(format!(
                "{id}: shipped on an authorisation of {amount}, its total is {:?}",
                order.total
            )),
            _ => broken.push(format!(
                "{id}: shipped with {} standing authorisations",
                standing.len()
            )),
        }
    }
    let (mut recorded, mut released) = (BTreeSet::new(), BTreeSet::new());
    for p in &seen.payments {
        match p {
            Payment::Authorised { payment_id, .. } => recorded.insert(payment_id.as_str()),
            Payment::Voided { payment_id, .. } => released.insert(payment_id.as_str()),
        };
    }
    let held_by_streams: BTreeSet<&str> = recorded.difference(&released).copied().collect();
    for id in &seen.ledger_held {
        if !held_by_streams.contains(id.as_str()) {
            let why = if recorded.contains(id.as_str()) {
                "voided in the payment stream"
            } else {
                "never recorded"
            };
            broken.push(format!("{id}: the provider holds money for it, {why} (dangling)"));
        }
    }
    for id in &held_by_streams {
        if !seen.ledger_held.contains(*id) {
            broken.push(format!(
                "{id}: recorded as authorised, the provider holds nothing"
            ));
        }
    }
    Verdict::new(
        "I3",
        "at most one authorisation per order; a cancelled order's voided; every SHIPPED order holds exactly one standing authorisation of its total; the provider holds money for exactly the authorisations the payment streams hold",
        per_order.len() + shipped + seen.ledger_held.len(),
        broken,
    )
}

/// I4: stock is conserved: what left the shelf is what the shipped orders
/// held, nothing stays reserved once every order is over, nothing is
/// negative. `before` is the stock before the load.
pub fn stock_conserved(before: &Stock, history: &[Placement], seen: &Observations) -> Verdict {
    let mut expected: BTreeMap<&str, i64> = before
        .iter()
        .map(|(sku, (_, _, shipped))| (sku.as_str(), *shipped))
        .collect();
    for p in history {
        // An unanswered placement may have made an order all the same: its
        // idempotency key says which.
        let order_id = match &p.outcome {
            Outcome::Accepted { order_id, .. } => Some(order_id),
            Outcome::Unknown { .. } => seen.keys.get(&(p.customer.clone(), p.key.clone())),
            Outcome::Refused { .. } => None,
        };
        if order_id
            .and_then(|id| seen.orders.get(id))
            .is_some_and(|o| o.status == "SHIPPED")
        {
            *expected.entry(p.sku.as_str()).or_default() += i64::from(p.quantity);
        }
    }
    let mut broken = Vec::new();
    for (sku, (on_hand0, _, shipped0)) in before {
        let Some((on_hand, reserved, shipped)) = seen.stock.get(sku) else {
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
    Verdict::new(
        "I4",
        "stock conserved: shipped = what the shipped orders held, on hand + shipped unchanged, nothing left reserved, never negative",
        before.len(),
        broken,
    )
}
