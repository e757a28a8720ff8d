//! The order in which the consumers' transactions committed, as seen from
//! outside: a watcher polls every service's inbox while the run goes on
//! and notes, for each inbox row, the poll that first saw it. A row becomes
//! visible when its transaction commits, so if poll `n` saw offset 12 of a
//! partition and not offset 11, offset 12 committed first, whenever either
//! transaction began (`processed_at` is the transaction's start, which says
//! nothing about the order of the commits). The machine's PostgreSQL keeps
//! no commit timestamps (`track_commit_timestamp` is off) and no logical
//! decoding (`wal_level` is `replica`), so this is the witness there is.
//!
//! Each poll reads only the rows of transactions that were not finished
//! at the previous poll's snapshot (`xmin` at or past its `xmin` horizon):
//! an older transaction had committed (or aborted) by then and its rows
//! were read then. Two commits between the same two polls get the same
//! number and are not told apart: a reorder that quick goes unseen.

use std::{collections::HashSet, time::Duration};

use anyhow::Result;
use sqlx::{PgConnection, Row as _};
use tokio::{sync::watch, task::JoinHandle};

use super::observe::{connect, Applied};
use omnisaga_stack::{Stack, SERVICES};

/// How often the inboxes are polled.
const EVERY: Duration = Duration::from_millis(250);

/// The watcher while it runs; [`Commits::stop`] ends it.
pub struct Commits {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Applied>>,
}

/// One service's inbox as the watcher follows it.
struct Follow {
    service: &'static str,
    db: Option<PgConnection>,
    /// Every transaction id below this had finished at the last poll.
    horizon: i64,
    /// `(consumer, event id)` of the rows seen.
    seen: HashSet<(String, String)>,
}

impl Commits {
    /// Starts watching the inboxes of `stack`.
    pub fn start(stack: &Stack) -> Self {
        Self::watch(
            SERVICES
                .iter()
                .map(|(s, _)| {
                    (
                        *s,
                        format!("{}/{}", omnisaga_stack::pg_server(), stack.database(s)),
                    )
                })
                .collect(),
        )
    }

    /// Starts watching the inbox of each `(service, database URL)`.
    pub fn watch(urls: Vec<(&'static str, String)>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut follows: Vec<Follow> = urls
                .iter()
                .map(|(service, _)| Follow {
                    service,
                    db: None,
                    horizon: 0,
                    seen: HashSet::new(),
                })
                .collect();
            let mut applied = Vec::new();
            for poll in 1u64.. {
                let last = *stopped.borrow();
                for (f, (_, url)) in follows.iter_mut().zip(&urls) {
                    // A cut connection (a fault) is opened again next time;
                    // the rows meanwhile get a later poll's number.
                    if let Err(e) = f.poll(url, poll, &mut applied).await {
                        eprintln!("[chaos] reading {}'s inbox: {e:#}", f.service);
                        f.db = None;
                    }
                }
                if last {
                    break;
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    _ = tokio::time::sleep(EVERY) => {}
                }
            }
            applied
        });
        Self { stop, task }
    }

    /// Polls once more and returns every applied record with the poll that
    /// first saw its commit.
    pub async fn stop(self) -> Result<Vec<Applied>> {
        let _ = self.stop.send(true);
        Ok(self.task.await?)
    }

    /// For a run on a stack it did not watch: every inbox row, all as seen
    /// by one poll (nothing to tell about their order).
    pub async fn once(stack: &Stack) -> Result<Vec<Applied>> {
        let mut applied = Vec::new();
        for (service, _) in SERVICES {
            let mut f = Follow {
                service,
                db: Some(connect(stack, service).await?),
                horizon: 0,
                seen: HashSet::new(),
            };
            f.poll("", 1, &mut applied).await?;
        }
        Ok(applied)
    }
}

impl Follow {
    async fn poll(&mut self, url: &str, poll: u64, applied: &mut Vec<Applied>) -> Result<()> {
        use sqlx::Connection as _;
        if self.db.is_none() {
            self.db = Some(PgConnection::connect(url).await?);
        }
        let Some(db) = self.db.as_mut() else {
            return Ok(());
        };
        // The snapshot's horizon is read in the same statement as the rows:
        // both of one snapshot. Transaction ids compared in 32 bits.
        let rows = sqlx::query(
            "SELECT consumer, event_id::text, topic, partition, \"offset\",
                    (pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296) AS horizon
             FROM inbox WHERE xmin::text::bigint >= $1
             UNION ALL
             SELECT NULL, NULL, NULL, NULL, NULL,
                    (pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)",
        )
        .bind(self.horizon)
        .fetch_all(&mut *db)
        .await?;
        let mut horizon = self.horizon;
        for r in &rows {
            horizon = r.get("horizon");
            let Some(consumer) = r.get::<Option<String>, _>(0) else {
                continue;
            };
            let event: String = r.get(1);
            if !self.seen.insert((consumer.clone(), event)) {
                continue;
            }
            applied.push(Applied {
                service: self.service.to_owned(),
                consumer,
                topic: r.get(2),
                partition: r.get(3),
                offset: r.get(4),
                seen: poll,
            });
        }
        self.horizon = horizon;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;
    use crate::{check::delivery, observe::Observations};

    /// A consumer whose transaction for offset 5 began after the one for
    /// offset 4 and committed before it (as one that does not wait for a
    /// record's commit before the next would): the watcher sees 5 first and
    /// I6 fails, where judging by `processed_at` (each transaction's start)
    /// saw them in order. Needs the machine's PostgreSQL.
    #[tokio::test]
    async fn a_later_offset_committed_first_is_seen_and_fails_i6() -> Result<()> {
        let name = format!("test_commits_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&format!("{}/postgres", omnisaga_stack::pg_server())).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await?;
        let url = format!("{}/{name}", omnisaga_stack::pg_server());
        let result = async {
            let mut setup = PgConnection::connect(&url).await?;
            sqlx::raw_sql(include_str!(
                "../../../crates/runtime/migrations/0001_event_store.sql"
            ))
            .execute(&mut setup)
            .await?;
            let insert = |offset: i64| {
                sqlx::query(
                    "INSERT INTO inbox (consumer, event_id, topic, partition, \"offset\")
                     VALUES ('payment', $1, 'orders.v1', 0, $2)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(offset)
            };
            let (mut first, mut second) = (
                PgConnection::connect(&url).await?,
                PgConnection::connect(&url).await?,
            );
            let commits = Commits::watch(vec![("payment", url.clone())]);
            let mut four = first.begin().await?;
            insert(4).execute(&mut *four).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut five = second.begin().await?;
            insert(5).execute(&mut *five).await?;
            five.commit().await?;
            // Past a poll or two before 4 commits.
            tokio::time::sleep(EVERY * 3).await;
            four.commit().await?;
            let by_start: Vec<i64> = sqlx::query_scalar("SELECT \"offset\" FROM inbox ORDER BY processed_at")
                .fetch_all(&mut setup)
                .await?;
            assert_eq!(by_start, [4, 5], "by transaction start they look in order");
            let seen = Observations {
                applied: commits.stop().await?,
                ..Observations::default()
            };
            let verdict = delivery::streams_in_order(&seen);
            assert!(!verdict.holds, "{verdict:?}");
            assert!(
                verdict.counterexamples[0].contains("committed orders.v1[0]@5"),
                "{verdict:?}"
            );
            anyhow::Ok(())
        }
        .await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        result
    }
}
