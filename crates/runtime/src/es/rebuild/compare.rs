//! A rebuild's copies against the live tables: what differs
//! ([`compare`]), and the live tables made equal to the copies ([`merge`]),
//! on the columns and rows the events decide ([`Table`]).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};

use crate::es::projection::Table;

/// How many keys a report names per kind of difference.
const EXAMPLES: i64 = 5;

/// One table's copy against its live rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableReport {
    pub table: String,
    /// Live rows the events decide (within the table's `rows`).
    pub live_rows: i64,
    /// Rows the events give (within the table's `rows`).
    pub rebuilt_rows: i64,
    /// Rows the events give that the live table lacks.
    pub missing: i64,
    /// Live rows the events do not give.
    pub extra: i64,
    /// Rows in both whose decided columns differ.
    pub different: i64,
    /// Keys of some of the rows missing, extra or different, each as
    /// `missing <key>`, `extra <key>` or `different <key> (<columns>)` (a
    /// key of several columns joined with `/`; the columns that differ).
    pub examples: Vec<String>,
    /// Live rows written or deleted by a merge.
    pub repaired: i64,
}

impl TableReport {
    pub fn identical(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.different == 0
    }
}

/// The names of `columns`, each prefixed with `alias.`, comma-separated.
fn list(alias: &str, columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL naming each of `columns` whose values differ between `l` and `r`
/// (NULL for each that does not).
fn differing(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("CASE WHEN l.{c} IS DISTINCT FROM r.{c} THEN '{c}' END"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL true when the rows `a` and `b` have the same key.
fn same_key(table: &Table, a: &str, b: &str) -> String {
    format!("ROW({}) = ROW({})", list(a, table.key), list(b, table.key))
}

/// The rows of `schema`'s `table` the events decide, as a subquery: the
/// live ones (`public`) or the copy's (`rebuild`).
fn decided(schema: &str, table: &Table) -> String {
    format!(
        "(SELECT * FROM {schema}.{} WHERE {})",
        table.name,
        table.rows.unwrap_or("true")
    )
}

/// Counts and names the differences between `table`'s copy and its live rows.
pub(super) async fn compare(conn: &mut PgConnection, table: &Table) -> Result<TableReport> {
    let (live, copy) = (decided("public", table), decided("rebuild", table));
    let key = |alias: &str| format!("concat_ws('/', {})", list(alias, table.key));
    let mut report = TableReport {
        table: table.name.to_owned(),
        ..Default::default()
    };
    report.live_rows = sqlx::query_scalar(&format!("SELECT count(*) FROM {live} l"))
        .fetch_one(&mut *conn)
        .await?;
    report.rebuilt_rows = sqlx::query_scalar(&format!("SELECT count(*) FROM {copy} r"))
        .fetch_one(&mut *conn)
        .await?;
    let kinds = [
        (
            "missing",
            format!(
                "SELECT {}, count(*) OVER () FROM {copy} r WHERE NOT EXISTS (SELECT 1 FROM {live} l WHERE {})",
                key("r"),
                same_key(table, "l", "r")
            ),
        ),
        (
            "extra",
            format!(
                "SELECT {}, count(*) OVER () FROM {live} l WHERE NOT EXISTS (SELECT 1 FROM {copy} r WHERE {})",
                key("l"),
                same_key(table, "l", "r")
            ),
        ),
        (
            "different",
            format!(
                "SELECT {} || ' (' || array_to_string(array_remove(ARRAY[{}], NULL), ', ') || ')', count(*) OVER ()
                 FROM {copy} r JOIN {live} l ON {} WHERE ROW({}) IS DISTINCT FROM ROW({})",
                key("r"),
                differing(table.columns),
                same_key(table, "l", "r"),
                list("l", table.columns),
                list("r", table.columns)
            ),
        ),
    ];
    for (kind, sql) in kinds {
        let rows = sqlx::query(&format!("{sql} ORDER BY 1 LIMIT {EXAMPLES}"))
            .fetch_all(&mut *conn)
            .await
            .with_context(|| format!("Failed to compare {} with its rebuilt copy", table.name))?;
        let count = rows.first().map_or(0, |r| r.get::<i64, _>(1));
        match kind {
            "missing" => report.missing = count,
            "extra" => report.extra = count,
            _ => report.different = count,
        }
        report
            .examples
            .extend(rows.iter().map(|r| format!("{kind} {}", r.get::<String, _>(0))));
    }
    Ok(report)
}

/// Makes the live tables' decided rows and columns those of the copies:
/// rows the events do not give are deleted (the last table first), and
/// rows missing or different are written (the first table first). Rows
/// already equal are not touched. Adds what it wrote to `reports`.
pub(super) async fn merge(
    conn: &mut PgConnection,
    tables: &[Table],
    reports: &mut [TableReport],
) -> Result<()> {
    for (table, report) in tables.iter().zip(reports.iter_mut()).rev() {
        if report.extra == 0 {
            continue;
        }
        let deleted = sqlx::query(&format!(
            "DELETE FROM public.{t} l WHERE ({rows}) AND NOT EXISTS (SELECT 1 FROM {copy} r WHERE {same})",
            t = table.name,
            rows = table.rows.unwrap_or("true"),
            copy = decided("rebuild", table),
            same = same_key(table, "l", "r"),
        ))
        .execute(&mut *conn)
        .await
        .with_context(|| {
            format!(
                "Failed to delete from {} the rows its events do not give",
                table.name
            )
        })?;
        report.repaired += deleted.rows_affected() as i64;
    }
    for (table, report) in tables.iter().zip(reports.iter_mut()) {
        if report.missing == 0 && report.different == 0 {
            continue;
        }
        let others: Vec<&str> = table
            .columns
            .iter()
            .copied()
            .filter(|c| !table.key.contains(c))
            .collect();
        let on_conflict = if others.is_empty() {
            "DO NOTHING".to_owned()
        } else {
            let set: Vec<String> = others.iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
            format!(
                "DO UPDATE SET {} WHERE ROW({}) IS DISTINCT FROM ROW({})",
                set.join(", "),
                list("l", &others),
                list("EXCLUDED", &others)
            )
        };
        let written = sqlx::query(&format!(
            "INSERT INTO public.{t} AS l ({columns}) SELECT {columns} FROM {copy} r
             ON CONFLICT ({key}) {on_conflict}",
            t = table.name,
            copy = decided("rebuild", table),
            columns = table.columns.join(", "),
            key = table.key.join(", "),
        ))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("Failed to write the rebuilt rows of {}", table.name))?;
        report.repaired += written.rows_affected() as i64;
    }
    Ok(())
}
