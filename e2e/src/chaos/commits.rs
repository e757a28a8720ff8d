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
use crate::{Stack, SERVICES};

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
        let urls: Vec<(&'static str, String)> = SERVICES
            .iter()
            .map(|(s, _)| (*s, format!("{}/{}", crate::pg_server(), stack.database(s))))
            .collect();
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
