//! `make run`'s state is in two places, the broker's log in the data
//! directory (`.omnisaga/broker/data`) and the services' databases in the
//! machine's PostgreSQL, and is one stack only while both halves are of it:
//! an outbox row marked published to one broker and consumed from it must
//! not meet another broker's log. So the databases are named after the data
//! directory (`omnisaga_<id>_<service>`, the id made with the directory, in
//! `stack-id`), so two clones never share them; each database carries the
//! broker cluster it was used with; and a stack whose halves disagree (one
//! is gone, or they are of different brokers) is started afresh on both
//! sides, saying so, never on one. `make clean-data` forgets both.

use std::path::Path;

use anyhow::{Context, Result};
use sqlx::{Connection, PgConnection};

use crate::{pg_server, Stack, SERVICES};

/// The database prefix of the stack kept in `dir`, made on first use.
pub fn db_prefix(dir: &Path) -> Result<String> {
    let file = dir.join("stack-id");
    let id = match std::fs::read_to_string(&file) {
        Ok(id) if is_id(id.trim()) => id.trim().to_owned(),
        _ => {
            let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
            std::fs::create_dir_all(dir)?;
            std::fs::write(&file, &id).with_context(|| format!("Failed to write {}", file.display()))?;
            id
        }
    };
    Ok(format!("omnisaga_{id}"))
}

fn is_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The broker's cluster id, once its log was formatted.
fn cluster_id(dir: &Path) -> Option<String> {
    let meta = std::fs::read_to_string(dir.join("broker/data/meta.properties")).ok()?;
    meta.lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .map(|id| id.trim().to_owned())
}

/// What the first service's database says it was used with, if it exists.
async fn recorded_cluster(admin: &mut PgConnection, prefix: &str) -> Result<Option<Option<String>>> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1")
            .bind(format!("{prefix}_{}", SERVICES[0].0))
            .fetch_optional(&mut *admin)
            .await?;
    Ok(row.map(|(comment,)| {
        comment.and_then(|c| c.strip_prefix("omnisaga broker cluster ").map(str::to_owned))
    }))
}

/// Before the broker starts: makes the two halves of the stack in `dir`
/// agree, starting both afresh when they do not.
pub async fn reconcile(dir: &Path, prefix: &str) -> Result<()> {
    let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server()))
        .await
        .context("Failed to connect to PostgreSQL on 127.0.0.1:5432 (make starts it)")?;
    let databases = recorded_cluster(&mut admin, prefix).await?;
    admin.close().await?;
    let broker = cluster_id(dir);
    let why = match (&databases, &broker) {
        (None, None) => return Ok(()),
        (Some(_), None) => "the broker's log is gone",
        (None, Some(_)) => "the databases are gone",
        (Some(Some(recorded)), Some(now)) if recorded != now => "the databases were used with another broker",
        (Some(_), Some(_)) => return Ok(()),
    };
    eprintln!(
        "[stack] {why}: starting both afresh (the databases {prefix}_* and {}), as one stack",
        dir.join("broker/data").display()
    );
    reset(dir, prefix).await
}

/// Once the broker and the databases are up: records the broker in them.
pub async fn record(dir: &Path, prefix: &str) -> Result<()> {
    let Some(cluster) = cluster_id(dir) else {
        return Ok(());
    };
    let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server())).await?;
    for (name, _) in SERVICES {
        // An identifier and a cluster id of Kafka's alphabet: nothing to escape.
        sqlx::query(&format!(
            "COMMENT ON DATABASE \"{prefix}_{name}\" IS 'omnisaga broker cluster {cluster}'"
        ))
        .execute(&mut admin)
        .await?;
    }
    admin.close().await?;
    Ok(())
}

/// Forgets the stack in `dir`: its databases and the broker's log together.
pub async fn reset(dir: &Path, prefix: &str) -> Result<()> {
    Stack::drop_databases(prefix).await?;
    let data = dir.join("broker/data");
    if data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("Failed to remove {}", data.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_keeps_its_database_prefix() {
        let dir = std::env::temp_dir().join(format!("omnisaga-state-{}", uuid::Uuid::new_v4()));
        let first = db_prefix(&dir).unwrap();
        assert_eq!(db_prefix(&dir).unwrap(), first);
        assert!(
            first.starts_with("omnisaga_") && first.len() == "omnisaga_".len() + 8,
            "{first}"
        );
        let other = std::env::temp_dir().join(format!("omnisaga-state-{}", uuid::Uuid::new_v4()));
        assert_ne!(
            db_prefix(&other).unwrap(),
            first,
            "another directory, other databases"
        );
        std::fs::write(dir.join("stack-id"), "../../x").unwrap();
        assert_ne!(
            db_prefix(&dir).unwrap(),
            "omnisaga_../../x",
            "a damaged id is made anew"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other);
    }

    /// A stack directory with a broker log of `cluster` (None: no log).
    fn broker_log(dir: &Path, cluster: Option<&str>) {
        let data = dir.join("broker/data");
        let _ = std::fs::remove_dir_all(&data);
        if let Some(cluster) = cluster {
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(
                data.join("meta.properties"),
                format!("version=1\ncluster.id={cluster}\n"),
            )
            .unwrap();
        }
    }

    async fn databases(prefix: &str) -> i64 {
        let mut admin = PgConnection::connect(&format!("{}/postgres", pg_server()))
            .await
            .unwrap();
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1 || '\\_%'")
            .bind(prefix)
            .fetch_one(&mut admin)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_broker_log_and_the_databases_are_kept_or_started_afresh_together() {
        let dir = std::env::temp_dir().join(format!("omnisaga-state-{}", uuid::Uuid::new_v4()));
        let prefix = db_prefix(&dir).unwrap();
        let options = crate::StackOptions {
            dir: dir.clone(),
            db_prefix: prefix.clone(),
            fresh_databases: false,
            ..crate::StackOptions::for_test()
        };
        // A first start, as `make run` does it: nothing yet, then the broker
        // formats its log and the databases are made.
        reconcile(&dir, &prefix).await.unwrap();
        broker_log(&dir, Some("cluster-a"));
        crate::database::ensure_all(&options).await.unwrap();
        record(&dir, &prefix).await.unwrap();
        assert_eq!(databases(&prefix).await, 5);
        reconcile(&dir, &prefix).await.unwrap();
        assert_eq!(databases(&prefix).await, 5, "both halves agree: kept");
        assert_eq!(cluster_id(&dir).as_deref(), Some("cluster-a"));

        broker_log(&dir, Some("cluster-b"));
        reconcile(&dir, &prefix).await.unwrap();
        assert_eq!(
            (databases(&prefix).await, cluster_id(&dir)),
            (0, None),
            "another broker: both afresh"
        );

        broker_log(&dir, None);
        crate::database::ensure_all(&options).await.unwrap();
        reconcile(&dir, &prefix).await.unwrap();
        assert_eq!(
            databases(&prefix).await,
            0,
            "the broker's log is gone: the databases go too"
        );

        broker_log(&dir, Some("cluster-c"));
        reconcile(&dir, &prefix).await.unwrap();
        assert_eq!(
            cluster_id(&dir),
            None,
            "the databases are gone: the broker's log goes too"
        );

        reset(&dir, &prefix).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
