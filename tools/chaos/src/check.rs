//! The invariants a fault run is judged by. Once the stack is quiet the
//! checker reads every service's database, every record of every topic
//! and the order the consumers' commits were seen in ([`observe`](super::observe));
//! I1 to I8 and I10 are pure functions of those observations and the
//! load's history ([`orders`], [`delivery`], [`topics`]), each tested on a
//! planted counterexample; I9 asks the trace viewer, and I11 each service
//! to verify its read models against its events ([`rebuilt`]). Each gives its
//! verdict with counterexamples: the order ids, and what differed.

pub mod delivery;
pub mod orders;
pub mod rebuilt;
pub mod topics;
pub mod traces;

#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeSet, HashMap},
    time::SystemTime,
};

use anyhow::Result;
use serde::Serialize;

pub use self::topics::TopicRead;
use super::{
    faults::Injected,
    load::{Outcome, Placement},
    observe::{self, Observations, Stock},
};
use omnisaga_stack::Stack;

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
    pub(crate) fn new(id: &'static str, rule: &'static str, checked: usize, mut broken: Vec<String>) -> Self {
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

/// Every pure invariant (all but I9) over `seen`; `before` is the stock
/// before the load.
pub fn judge(history: &[Placement], before: &Stock, seen: &Observations) -> (Vec<Verdict>, TopicRead) {
    let (read_back, read) = topics::topics_read(seen);
    let verdicts = vec![
        orders::terminal_states(history, seen),
        orders::idempotency(history, seen),
        orders::one_authorisation(seen),
        orders::stock_conserved(before, history, seen),
        delivery::one_message(seen),
        delivery::streams_in_order(seen),
        delivery::queues_empty(seen),
        delivery::analytics_agrees(seen),
        read_back,
    ];
    (verdicts, read)
}

/// Checks every invariant of the quiet `stack`; `applied` are the
/// consumers' commits as the run saw them ([`super::commits`]), `faults`
/// when the faults were active, `epoch` the wall-clock time the run (and
/// its seconds) started.
pub async fn all(
    stack: &Stack,
    history: &[Placement],
    before: &Stock,
    applied: Vec<observe::Applied>,
    faults: &[Injected],
    epoch: SystemTime,
) -> Result<(Vec<Verdict>, TopicRead, Observations)> {
    let mut seen = observe::databases(stack).await?;
    seen.lag = super::broker::lag(stack).await?;
    seen.records = super::broker::records(stack).await?;
    seen.applied = applied;
    seen.channel = stack.webhook.as_ref().map(|sink| sink.receipts());
    let (mut verdicts, read) = judge(history, before, &seen);
    let i9 = traces::traces_whole(stack, history, &seen.orders, faults, epoch).await?;
    verdicts.insert(8, i9);
    verdicts.push(rebuilt::read_models_rebuilt(stack).await?);
    Ok((verdicts, read, seen))
}

/// Whether `status` is an order's last.
pub(crate) fn terminal(status: &str) -> bool {
    status == "SHIPPED" || status == "CANCELLED"
}

/// The orders the load made: every one answered 201, and every one an
/// unanswered placement's key holds (it may have been applied: as
/// Jepsen's `:info`, never taken for "nothing happened").
pub(crate) fn made_orders<'a>(
    history: &'a [Placement],
    keys: &'a HashMap<(String, String), String>,
) -> BTreeSet<&'a str> {
    history
        .iter()
        .filter_map(|p| match &p.outcome {
            Outcome::Accepted { order_id, .. } => Some(order_id.as_str()),
            Outcome::Unknown { .. } => keys.get(&(p.customer.clone(), p.key.clone())).map(String::as_str),
            Outcome::Refused { .. } => None,
        })
        .collect()
}

/// Whether the stack is quiet: every order the load made terminal, nothing
/// left in an outbox, a provider call queue, a pick queue or a message
/// queue, and every consumer group's offsets committed up to the end of its
/// topics (a consumer commits what it handled every half second, so an
/// order can be terminal while the event after it is still being applied
/// or committed).
pub async fn quiet(stack: &Stack, history: &[Placement]) -> Result<bool> {
    let orders = observe::orders(stack).await?;
    let customers: BTreeSet<&str> = history.iter().map(|p| p.customer.as_str()).collect();
    let none = HashMap::new();
    let accepted = made_orders(history, &none);
    let open = orders
        .iter()
        .filter(|(id, o)| accepted.contains(id.as_str()) || customers.contains(o.customer.as_str()))
        .any(|(_, o)| !terminal(&o.status));
    let missing = accepted.iter().any(|id| !orders.contains_key(*id));
    Ok(!open
        && !missing
        && observe::backlog(stack).await?.is_empty()
        && super::broker::lag(stack).await?.iter().all(|(_, l)| *l == 0))
}
