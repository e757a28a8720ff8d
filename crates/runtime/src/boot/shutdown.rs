//! Graceful shutdown: one `CancellationToken` reaches the HTTP server, the
//! consumers and the relay; SIGTERM or SIGINT cancels it. The stop is
//! bounded by the grace period (`SHUTDOWN_GRACE_MS`), whether or not the
//! broker answers: work still in hand then is handed back, not waited for.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received, finishing in-flight work");
        t.cancel();
    });
    token
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A service's tasks run until `work` is cancelled (by the signal, or here
/// when one of them fails or ends by itself), then get three quarters of
/// `grace` to finish what they hold: a request in flight, a consumer's
/// batch, a picker's task, a provider call. Whatever still runs then is
/// aborted, which hands its work back: a lease or claim runs out and is
/// taken again, an uncommitted transaction rolls back, a record whose
/// offset was not committed is redelivered (and dropped by the inbox if it
/// was applied). Returns the first failure, and when the stop must be over.
pub(crate) async fn run_tasks(
    mut set: tokio::task::JoinSet<anyhow::Result<()>>,
    work: &CancellationToken,
    grace: Duration,
) -> (anyhow::Result<()>, Instant) {
    use anyhow::Context as _;
    let mut result = Ok(());
    let mut deadline = None;
    loop {
        let joined = match deadline {
            None => tokio::select! {
                joined = set.join_next() => joined,
                _ = work.cancelled() => {
                    deadline = Some(Instant::now() + grace);
                    continue;
                }
            },
            Some(deadline) => match tokio::time::timeout_at(deadline - grace / 4, set.join_next()).await {
                Ok(joined) => joined,
                Err(_) => {
                    tracing::warn!(
                        tasks = set.len(),
                        "tasks still working after their share of the grace period, stopped: \
                         what they held is handed back"
                    );
                    set.shutdown().await;
                    break;
                }
            },
        };
        let Some(joined) = joined else { break };
        let outcome = joined.context("a service task panicked").and_then(|r| r);
        if let Err(e) = outcome {
            tracing::error!(error = %format!("{e:#}"), "service task failed, stopping");
            if result.is_ok() {
                result = Err(e);
            }
        }
        // A task that ends by itself before shutdown is a bug; stop everything.
        work.cancel();
    }
    (result, deadline.unwrap_or_else(|| Instant::now() + grace))
}

/// The relay's last drain after the tasks stopped: a quarter of `grace` at
/// most, and never past an eighth of it before `deadline`. With the broker
/// gone it would wait for every record's delivery timeout instead. The rows
/// it did not publish stay in the outbox, and the next start (or another
/// instance) publishes them. Whether it finished: when it did not, nothing
/// the producer still holds can be delivered either.
pub(crate) async fn drain_relay(
    mut relay: tokio::task::JoinHandle<anyhow::Result<()>>,
    deadline: Instant,
    grace: Duration,
) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let until = (Instant::now() + grace / 4).min(deadline - grace / 8);
    match tokio::time::timeout_at(until, &mut relay).await {
        Ok(joined) => joined.context("the relay panicked")?.map(|()| true),
        Err(_) => {
            relay.abort();
            tracing::warn!(
                "the relay's last drain did not finish within its share of the grace period (the \
                 broker does not answer): what it did not publish stays in the outbox for the next start"
            );
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_will_not_stop_is_aborted_within_the_grace_period() {
        let work = CancellationToken::new();
        let mut set = tokio::task::JoinSet::new();
        let stuck = work.clone();
        set.spawn(async move {
            stuck.cancelled().await;
            // Work in hand that takes far longer than the grace period.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        set.spawn(async { Ok(()) });
        let grace = Duration::from_millis(400);
        let start = Instant::now();
        work.cancel();
        let (result, deadline) = run_tasks(set, &work, grace).await;
        assert!(result.is_ok());
        let took = start.elapsed();
        // Aborted at three quarters of the grace period, not after the hour
        // its work would take (the upper bound leaves room for a loaded machine).
        assert!(
            took >= grace * 3 / 4 && took < grace + Duration::from_secs(5),
            "stopped in {took:?}"
        );
        assert!(deadline <= start + grace + Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_drain_that_does_not_finish_is_aborted_and_said_so() {
        let grace = Duration::from_millis(400);
        let deadline = Instant::now() + grace;
        let relay = tokio::spawn(async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
        let start = Instant::now();
        assert!(!drain_relay(relay, deadline, grace).await.unwrap(), "not drained");
        let took = start.elapsed();
        assert!(
            took >= grace / 4 && took < grace / 4 + Duration::from_secs(5),
            "aborted after {took:?}"
        );
        let done = tokio::spawn(async { Ok(()) });
        assert!(drain_relay(done, Instant::now() + grace, grace).await.unwrap());
    }
}
