//! Waiting on a condition with a deadline, never a fixed sleep: the one
//! loop every test waits with, in a service's process (`testing::wait_for`)
//! or against a whole stack (`omnisaga_stack::client::wait_for`, whose
//! checks may fail on the way). Not behind `testing`: the stack's launcher
//! waits with it too.

use std::{future::Future, time::Duration};

use anyhow::{bail, Result};

/// How often a condition in the test's own process is checked again.
const IN_PROCESS: Duration = Duration::from_millis(50);
/// How often a condition asked of a stack over HTTP is checked again.
const OVER_THE_WIRE: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, timeout, IN_PROCESS, || {
        let checked = check();
        async move { Ok(checked.await) }
    })
    .await
}

/// Polls `check` until it returns `Ok(Some)`, failing after `timeout` with
/// the last error it returned (a check that fails is checked again: the
/// stack may still be starting).
pub async fn try_wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    poll(what, timeout, OVER_THE_WIRE, check).await
}

async fn poll<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() > deadline {
            match last_error {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what} (last error: {e:#})"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_condition_met_is_returned_and_one_never_met_times_out_with_the_last_error() {
        let mut n = 0;
        let v = wait_for("the third check", Duration::from_secs(5), || {
            n += 1;
            let v = (n == 3).then_some(n);
            async move { v }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        let err = try_wait_for::<(), _, _>("nothing", Duration::from_millis(250), || async {
            bail!("not yet up")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("waiting for nothing"), "{err}");
        assert!(err.contains("not yet up"), "{err}");
        let err = wait_for::<(), _, _>("never", Duration::from_millis(60), || async { None })
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(err, "timed out after 60ms waiting for never");
    }
}
