//! The fault `dlq-verbs` ([`super::faults::Fault::DeadLetterVerbs`]):
//! orders of the load poisoned while it runs, and each resolved by one of
//! the dead-letter workbench's verbs, as an operator would: payment is
//! stopped, five orders placed meanwhile are picked, and
//!
//! - one gets a record no service can read on the payments topic before
//!   payment's answer (every consumer of the topic parks the order):
//!   **discarded** at each of them;
//! - one gets a record every consumer reads and rejects (a
//!   `PaymentAuthorized` of no order, [`bogus`]) there: **skipped** at each,
//!   then sent again, as a relay sends a record twice, and dropped as a
//!   duplicate (a parked order at the end fails I7);
//! - three have their placement refused by payment's database (a check
//!   constraint on `provider_calls`, the "bug"), so payment dead-letters
//!   their `OrderPlaced`; a dry-run redrive lists the three and changes
//!   nothing; the constraint is dropped (the "fix"); one is **replayed** by
//!   its key and the two left are **redriven** by topic and event type.
//!
//! Every answer is checked as it comes; the invariants judge the rest once
//! the stack is quiet. These helpers also serve `e2e/tests/dead_letter_verbs.rs`.

use std::{collections::BTreeSet, time::Duration};

use anyhow::{ensure, Context, Result};
use omnisaga_proto::v1::{envelope::Payload, Envelope, PaymentAuthorized};
use prost::Message as _;
use serde_json::{json, Value};

use super::{load::Load, observe::connect};
use omnisaga_stack::{client::wait_for, produce_raw, Stack};

/// The payload of the poison records [`super::faults::Fault::Poison`] and
/// this fault send: not an envelope.
pub const POISON: &[u8] = b"\xff\xfe poison, not an envelope";

/// The producer named in the envelopes of [`bogus`] records.
pub const BOGUS_PRODUCER: &str = "omnisaga-chaos";

/// The consumers of the payments topic: where a record on it parks an order.
pub const PAYMENTS_CONSUMERS: [&str; 4] = ["order", "warehouse", "notification", "analytics"];

/// The constraint that refuses payment's placements of held orders.
const HOLD: &str = "chaos_held_orders";

const WAIT: Duration = Duration::from_secs(90);

/// A record every consumer of the payments topic decodes and rejects: a
/// `PaymentAuthorized` whose order id is no UUID (sent under a real
/// order's key, it parks that order), from [`BOGUS_PRODUCER`].
pub fn bogus() -> Vec<u8> {
    Envelope {
        event_id: uuid::Uuid::now_v7().to_string(),
        event_type: "PaymentAuthorized".into(),
        order_id: "no-such-order".into(),
        schema_version: 1,
        producer: BOGUS_PRODUCER.into(),
        payload: Some(Payload::PaymentAuthorized(PaymentAuthorized::default())),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Whether `payload` is the fault suite's own: [`POISON`] or [`bogus`].
pub fn is_own(payload: &[u8]) -> bool {
    payload == POISON || Envelope::decode(payload).is_ok_and(|e| e.producer == BOGUS_PRODUCER)
}

/// Makes payment's database refuse to queue a call for `orders` (a check
/// constraint on `provider_calls`): payment rejects their placements,
/// and dead-letters them once its attempts are spent.
pub async fn hold_payments(stack: &Stack, orders: &[String]) -> Result<()> {
    let mut db = connect(stack, "payment").await?;
    let list = orders
        .iter()
        .map(|o| uuid::Uuid::parse_str(o).map(|u| format!("'{u}'")))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    sqlx::raw_sql(&format!(
        "ALTER TABLE provider_calls ADD CONSTRAINT {HOLD} CHECK (order_id NOT IN ({list})) NOT VALID"
    ))
    .execute(&mut db)
    .await?;
    Ok(())
}

/// Drops [`hold_payments`]' constraint: the fix.
pub async fn release_payments(stack: &Stack) -> Result<()> {
    let mut db = connect(stack, "payment").await?;
    sqlx::raw_sql(&format!(
        "ALTER TABLE provider_calls DROP CONSTRAINT IF EXISTS {HOLD}"
    ))
    .execute(&mut db)
    .await?;
    Ok(())
}

/// The services' dead-letter routes, called with an operator's token.
pub struct Workbench {
    http: reqwest::Client,
    urls: Vec<(String, String)>,
}

impl Workbench {
    pub fn new(stack: &Stack) -> Self {
        let urls = omnisaga_stack::SERVICES
            .iter()
            .map(|(s, _)| {
                (
                    (*s).to_owned(),
                    format!("{}/v1/admin/dead-letters", stack.admin_url(s)),
                )
            })
            .collect();
        Self {
            http: stack.admin_client(),
            urls,
        }
    }

    fn url(&self, service: &str) -> Result<&str> {
        self.urls
            .iter()
            .find(|(s, _)| s == service)
            .map(|(_, u)| u.as_str())
            .with_context(|| format!("no service {service}"))
    }

    /// `key`'s dead letters at `service`, oldest first.
    pub async fn letters(&self, service: &str, key: &str) -> Result<Vec<Value>> {
        let body: Value = self
            .http
            .get(self.url(service)?)
            .query(&[("key", key)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body["items"].as_array().cloned().unwrap_or_default())
    }

    /// POSTs `body` to `path` under the service's dead-letter routes; the
    /// answer, which must be a 200.
    pub async fn post(&self, service: &str, path: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url(service)?))
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "{service} {path}: {status} {answer}");
        Ok(answer)
    }

    /// Waits until `key` has a dead letter at `service`; returns the first.
    pub async fn wait_parked(&self, service: &str, key: &str) -> Result<Value> {
        wait_for(&format!("{service} to park {key}"), WAIT, || async {
            Ok(self.letters(service, key).await?.first().cloned())
        })
        .await
    }

    /// Discards (`verb` "discard") or skips ("skip") `key`'s first dead
    /// letter at `service`; its key's later records must all replay.
    pub async fn resolve(&self, service: &str, key: &str, verb: &str) -> Result<Value> {
        let head = self.wait_parked(service, key).await?;
        let id = head["id"].as_i64().context("a dead letter's id")?;
        let reason = format!("{verb} by the fault suite");
        let answer = self
            .post(service, &format!("/{id}/{verb}"), json!({ "reason": reason }))
            .await?;
        let report = &answer["replay"]["report"];
        ensure!(
            report["remaining"] == 0 && report["error"].is_null(),
            "{verb} {id} at {service}: {answer}"
        );
        Ok(answer)
    }
}

/// The keys of a redrive's answer.
pub fn redriven(answer: &Value) -> BTreeSet<String> {
    answer["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["key"].as_str().map(str::to_owned))
        .collect()
}

/// The fault: see the module's text. Returns what it did.
pub async fn resolve_each_way(stack: &mut Stack, load: &Load) -> Result<String> {
    stack.stop_service("payment").await?;
    let placed_after = load.elapsed();
    let picked = wait_for("five orders placed while payment is stopped", WAIT, || async {
        let orders = load.accepted_since(placed_after);
        Ok((orders.len() >= 5).then(|| orders[..5].to_vec()))
    })
    .await;
    let picked = match picked {
        Ok(picked) => picked,
        Err(e) => {
            stack.start_service("payment").await?;
            return Err(e);
        }
    };
    let (discarded, skipped, replayed) = (&picked[0], &picked[1], &picked[2]);
    let redrive: BTreeSet<String> = picked[3..5].iter().cloned().collect();
    let payments = format!("{}payments.v1", stack.topic_prefix());
    let record = bogus();
    let shared: &Stack = stack;
    let poisoned = async {
        produce_raw(&shared.kafka, &payments, discarded, POISON).await?;
        produce_raw(&shared.kafka, &payments, skipped, &record).await?;
        hold_payments(shared, &picked[2..5]).await
    }
    .await;
    stack.start_service("payment").await?;
    poisoned?;
    let bench = Workbench::new(stack);
    let outcome = resolve(&bench, stack, &picked, &redrive).await;
    release_payments(stack).await?;
    outcome?;
    // The skipped record again: every consumer has its event id, and drops it.
    produce_raw(&stack.kafka, &payments, skipped, &record).await?;
    Ok(format!(
        "discarded the poison before {discarded}, skipped the bogus record before {skipped} (and sent it again), \
         replayed {replayed} and redrove {} at payment after the fix",
        redrive.iter().cloned().collect::<Vec<_>>().join(" and ")
    ))
}

/// The verbs, once every order is parked where it should be.
async fn resolve(
    bench: &Workbench,
    stack: &Stack,
    picked: &[String],
    redrive: &BTreeSet<String>,
) -> Result<()> {
    let (discarded, skipped, replayed) = (&picked[0], &picked[1], &picked[2]);
    for held in &picked[2..5] {
        bench.wait_parked("payment", held).await?;
    }
    let filters = json!({ "topic": "orders.v1", "event_type": "OrderPlaced" });
    let mut dry = filters.clone();
    dry["dry_run"] = true.into();
    let listed = bench.post("payment", "/redrive", dry).await?;
    let all: BTreeSet<String> = picked[2..5].iter().cloned().collect();
    ensure!(redriven(&listed) == all, "a dry run listed {listed}");
    for held in &picked[2..5] {
        ensure!(
            !bench.letters("payment", held).await?.is_empty(),
            "a dry run replayed {held}"
        );
    }
    release_payments(stack).await?;
    let answer = bench
        .post("payment", "/replay", json!({ "key": replayed }))
        .await?;
    let report = &answer["replays"][0]["report"];
    ensure!(
        report["remaining"] == 0 && report["error"].is_null(),
        "replay of {replayed}: {answer}"
    );
    let answer = bench.post("payment", "/redrive", filters).await?;
    ensure!(redriven(&answer) == *redrive, "redrive: {answer}");
    for key in answer["keys"].as_array().into_iter().flatten() {
        ensure!(
            key["report"]["remaining"] == 0 && key["report"]["error"].is_null(),
            "redrive: {key}"
        );
    }
    for service in PAYMENTS_CONSUMERS {
        bench.resolve(service, discarded, "discard").await?;
        bench.resolve(service, skipped, "skip").await?;
    }
    Ok(())
}
