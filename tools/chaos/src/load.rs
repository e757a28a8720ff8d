//! The load of a fault run: orders placed at a steady rate by a few dozen
//! customers, some paid with a card that is declined, some cancelled while
//! their saga is under way, every answer kept as history for the checker.
//! A placement that gets no answer (a timeout, a refused connection) or a
//! 5xx is retried once with the same Idempotency-Key, as the mobile app
//! does; if the retry gets none either it is indeterminate ([`judge`]):
//! zero or one order, never taken for "nothing happened".

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use serde_json::Value;
use tokio::{sync::watch, task::JoinSet, time::Instant};

use omnisaga_stack::client::{order_body, Client};

/// What one placement (and its retry, if any) came to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// 201 with this order id and the trace its placement began.
    Accepted { order_id: String, trace_id: String },
    /// A 4xx, with no indeterminate answer before it: nothing may exist.
    Refused { status: u16 },
    /// Indeterminate, Jepsen's `:info`: no answer, a timeout or a 5xx after
    /// the request was sent (and nothing certain after it). It may have
    /// committed: an order may or may not exist.
    Unknown { error: String },
}

/// One placement in the history.
#[derive(Debug, Clone, Serialize)]
pub struct Placement {
    pub customer: String,
    pub key: String,
    pub sku: String,
    pub quantity: u32,
    pub token: String,
    /// Seconds since the load started.
    pub at: f64,
    pub outcome: Outcome,
    /// Whether a cancellation was asked for, and its status.
    pub cancel: Option<u16>,
}

/// How the load runs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Orders per second.
    pub rate: f64,
    /// Share of orders paid with `tok_decline` (they wait for payment, then
    /// are cancelled at the payment deadline).
    pub declined: f64,
    /// Share of orders cancelled by their customer soon after placing.
    pub cancelled: f64,
    /// How many customers share the load.
    pub customers: u32,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            rate: 8.0,
            declined: 0.1,
            cancelled: 0.1,
            customers: 40,
        }
    }
}

/// The load while it runs; [`Load::stop`] ends it and returns the history.
pub struct Load {
    history: Arc<Mutex<Vec<Placement>>>,
    /// What a placement's `at` counts from.
    started: Instant,
    /// The rate is `options.rate` times this.
    factor: Arc<std::sync::atomic::AtomicU32>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The SKUs the load orders: stocked by the seed catalog (100 000 each).
pub const SKUS: [&str; 4] = ["SKU-TSHIRT-M", "SKU-HOODIE-L", "SKU-MUG", "SKU-BOTTLE"];

impl Load {
    /// Starts placing orders through `client` as `options` say.
    pub fn start(client: Client, options: LoadOptions) -> Self {
        let history = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let factor = Arc::new(std::sync::atomic::AtomicU32::new(1));
        let started = Instant::now();
        let task = tokio::spawn(run(
            client,
            options,
            history.clone(),
            factor.clone(),
            stopped,
            started,
        ));
        Self {
            history,
            started,
            factor,
            stop,
            task,
        }
    }

    /// Places orders at `factor` times the rate asked for (an overload).
    pub fn set_factor(&self, factor: u32) {
        self.factor
            .store(factor.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// How many placements were made so far.
    pub fn placed(&self) -> usize {
        self.history.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Seconds since the load started, as a placement's `at` counts them.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The orders of the placements made at or after `at` (seconds since
    /// the load started) answered so far, in the order their answers came:
    /// those accepted, paid with a card that is approved and not cancelled.
    pub fn accepted_since(&self, at: f64) -> Vec<String> {
        let history = self.history.lock().map(|h| h.clone()).unwrap_or_default();
        history
            .into_iter()
            .filter(|p| p.at >= at && p.token == "tok_visa" && p.cancel.is_none())
            .filter_map(|p| match p.outcome {
                Outcome::Accepted { order_id, .. } => Some(order_id),
                _ => None,
            })
            .collect()
    }

    /// Stops placing, waits for the placements in flight, returns the history.
    pub async fn stop(self) -> Vec<Placement> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut history = self.history.lock().map(|h| h.clone()).unwrap_or_default();
        history.sort_by(|a, b| a.at.total_cmp(&b.at));
        history
    }
}

async fn run(
    client: Client,
    options: LoadOptions,
    history: Arc<Mutex<Vec<Placement>>>,
    factor: Arc<std::sync::atomic::AtomicU32>,
    mut stop: watch::Receiver<bool>,
    started: Instant,
) {
    // Customers of this load alone: a run on a stack earlier runs used
    // (`omnisaga-chaos --each`) judges only its own orders per customer.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let interval = Duration::from_secs_f64(1.0 / options.rate.max(0.01));
    let mut next = Instant::now();
    let mut inflight = JoinSet::new();
    for n in 0u64.. {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        // Behind schedule (a slow machine), the next one goes at once but
        // no burst makes up for the lost time.
        let factor = factor.load(std::sync::atomic::Ordering::Relaxed).max(1);
        next = next.max(Instant::now() - interval) + interval / factor;
        // A fixed pattern instead of randomness: the same run places the
        // same orders, and every share comes out as asked.
        let pick = |share: f64, salt: u64| {
            ((n.wrapping_mul(2_654_435_761).wrapping_add(salt)) % 1000) < (share * 1000.0) as u64
        };
        let declined = pick(options.declined, 17);
        let cancel = !declined && pick(options.cancelled, 401);
        let placement = Placement {
            customer: format!("chaos-{run}-{}", n % u64::from(options.customers.max(1))),
            key: uuid::Uuid::new_v4().to_string(),
            sku: SKUS[(n % SKUS.len() as u64) as usize].to_owned(),
            quantity: 1 + (n % 3) as u32,
            token: if declined { "tok_decline" } else { "tok_visa" }.to_owned(),
            at: started.elapsed().as_secs_f64(),
            outcome: Outcome::Unknown { error: String::new() },
            cancel: None,
        };
        let (client, history) = (client.clone(), history.clone());
        inflight.spawn(async move {
            let done = place(&client, placement, cancel).await;
            if let Ok(mut h) = history.lock() {
                h.push(done);
            }
        });
        // Reap what finished so the set does not grow with the run.
        while inflight.try_join_next().is_some() {}
    }
    while inflight.join_next().await.is_some() {}
}

/// One answer to one attempt of a placement: a status with its body, or
/// none (the error or timeout).
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16, Value),
    Failed(String),
}

impl Answer {
    /// Whether it says for certain what happened: a 201 or a 4xx.
    fn certain(&self) -> bool {
        matches!(self, Self::Status(status, _) if *status == 201 || (400..500).contains(status))
    }
}

/// What a placement's answers, in order, came to, as Jepsen judges an
/// operation: a 201 is an order; a 4xx with nothing indeterminate before
/// it is none; anything else (no answer, a timeout, a 5xx: the request may
/// have been applied all the same) is indeterminate.
pub fn judge(answers: &[Answer]) -> Outcome {
    if let Some(Answer::Status(_, v)) = answers.iter().find(|a| matches!(a, Answer::Status(201, _))) {
        return Outcome::Accepted {
            order_id: v["order_id"].as_str().unwrap_or_default().to_owned(),
            trace_id: v["trace_id"].as_str().unwrap_or_default().to_owned(),
        };
    }
    match answers {
        [.., Answer::Status(status, _)] if answers.iter().all(Answer::certain) => {
            Outcome::Refused { status: *status }
        }
        _ => Outcome::Unknown {
            error: answers
                .iter()
                .map(|a| match a {
                    Answer::Status(status, _) => format!("answered {status}"),
                    Answer::Failed(e) => e.clone(),
                })
                .collect::<Vec<_>>()
                .join(", then "),
        },
    }
}

/// Places one order, retrying once with the same key when the answer was
/// not certain, and cancels it if asked.
async fn place(client: &Client, mut p: Placement, cancel: bool) -> Placement {
    let body = order_body(&p.sku, p.quantity, &p.token, &p.customer);
    let mut answers = Vec::new();
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let answer = tokio::time::timeout(Duration::from_secs(10), client.post_order(&p.key, &body)).await;
        let answer = match answer {
            Ok(Ok((status, v))) => Answer::Status(status, v),
            Ok(Err(e)) => Answer::Failed(format!("{e:#}")),
            Err(_) => Answer::Failed("no answer within 10 s".into()),
        };
        let certain = answer.certain();
        answers.push(answer);
        if certain {
            break;
        }
    }
    let outcome = judge(&answers);
    if let (true, Outcome::Accepted { order_id, .. }) = (cancel, &outcome) {
        let url = format!("{}/v1/orders/{order_id}/cancel", client.order);
        let sent = client
            .http
            .post(url)
            .bearer_auth(client.customer_token(&p.customer))
            .json(&Value::Object(Default::default()))
            .send()
            .await;
        p.cancel = Some(sent.map(|r| r.status().as_u16()).unwrap_or(0));
    }
    p.outcome = outcome;
    p
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn created(id: &str) -> Answer {
        Answer::Status(201, json!({"order_id": id, "trace_id": "t"}))
    }

    #[test]
    fn a_5xx_or_no_answer_is_indeterminate_never_nothing() {
        let unavailable = || Answer::Status(503, Value::Null);
        // Today's main took the second 503 for a refusal: nothing made.
        assert!(matches!(
            judge(&[unavailable(), unavailable()]),
            Outcome::Unknown { .. }
        ));
        assert!(matches!(
            judge(&[Answer::Failed("no answer within 10 s".into()), unavailable()]),
            Outcome::Unknown { .. }
        ));
        // A 4xx after an indeterminate attempt says nothing of the first.
        assert!(matches!(
            judge(&[unavailable(), Answer::Status(409, Value::Null)]),
            Outcome::Unknown { .. }
        ));
        assert_eq!(
            judge(&[Answer::Status(422, Value::Null)]),
            Outcome::Refused { status: 422 }
        );
        assert_eq!(
            judge(&[Answer::Failed("reset".into()), created("o-1")]),
            Outcome::Accepted {
                order_id: "o-1".into(),
                trace_id: "t".into()
            }
        );
    }
}
