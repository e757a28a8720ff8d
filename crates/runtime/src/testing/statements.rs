//! Counting the statements a piece of work runs, as the bench counts them:
//! `pg_stat_statements` (loaded by `infra/postgres/omnisaga.conf`) per query
//! text, BEGIN, COMMIT and ROLLBACK included, on the test's own database.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use sqlx::PgPool;

/// Calls per query text on one database (its own counting left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statements(pub BTreeMap<String, i64>);

impl Statements {
    /// What `pool`'s database has run so far. Nothing else may use the
    /// database meanwhile for the count to be the work's.
    pub async fn now(pool: &PgPool) -> Result<Self> {
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await
            .context("pg_stat_statements: the server must preload it")?;
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT query, sum(calls)::bigint FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT LIKE '%pg_stat_statements%'
             GROUP BY query",
        )
        .fetch_all(pool)
        .await?;
        Ok(Self(rows.into_iter().collect()))
    }

    /// The statements run between `before` and this count.
    pub fn since(&self, before: &Statements) -> Statements {
        Self(
            self.0
                .iter()
                .map(|(query, calls)| (query.clone(), calls - before.0.get(query).unwrap_or(&0)))
                .filter(|(_, calls)| *calls != 0)
                .collect(),
        )
    }

    /// How many statements in all.
    pub fn total(&self) -> i64 {
        self.0.values().sum()
    }

    /// How many of them began with `prefix` (`BEGIN`, `COMMIT`, `WITH`...).
    pub fn starting(&self, prefix: &str) -> i64 {
        self.0
            .iter()
            .filter(|(query, _)| query.trim_start().starts_with(prefix))
            .map(|(_, calls)| calls)
            .sum()
    }
}

impl std::fmt::Display for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (query, calls) in &self.0 {
            let line: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            writeln!(f, "{calls} × {}", line.chars().take(100).collect::<String>())?;
        }
        Ok(())
    }
}
