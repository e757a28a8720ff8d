//! Batch imports (the batch pattern): an operator sends a file of rows, CSV
//! with a header line or JSON lines, under a `Batch-Id`. Every row is
//! checked first and every problem reported (line, field, problem); the
//! batch is applied whole, in one transaction, only when no row has one:
//! one bad row and nothing changes, so a file is fixed and sent again
//! rather than half-applied and pieced together. A batch id applied once
//! answers the same again without applying anything (a retry after a lost
//! answer is safe); the same id with another file is refused.
//!
//! A service says what a row is with an [`Importer`]; [`import`] does the
//! rest. The `import_batches` table (migrations/0005_import_batches.sql)
//! keeps the applied batches.
//!
//! Reading a file's rows and checking them is in `read`, the idempotent
//! apply in `apply`, the route and its OpenAPI path item in `route`.

use std::{collections::BTreeMap, future::Future};

use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

mod apply;
mod read;
mod route;

pub use apply::import;
pub use read::{batch_id, check, read};
pub use route::{path_item, routes};

/// Largest file a batch may be.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Most rows a batch may have.
pub const MAX_ROWS: usize = 20_000;
/// Most row problems an answer lists (all are counted).
const MAX_LISTED: usize = 1_000;

/// One row's problem: the line of the file (1 is a CSV file's header or a
/// JSON lines file's first row), the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: usize,
    pub field: String,
    pub problem: String,
}

impl RowError {
    pub fn new(line: usize, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            line,
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// One row as read, its fields by name: JSON values from JSON lines, text
/// from CSV.
#[derive(Debug, Clone)]
pub struct Row {
    pub line: usize,
    fields: BTreeMap<String, Value>,
}

impl Row {
    /// The text of `field`, trimmed: present, not blank, at most `max`
    /// characters, no control characters.
    pub fn text(&self, field: &str, max: usize) -> Result<String, RowError> {
        let problem = |p: &str| RowError::new(self.line, field, p);
        match self.fields.get(field) {
            None | Some(Value::Null) => Err(problem("is missing")),
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() {
                    Err(problem("is blank"))
                } else if t.chars().count() > max {
                    Err(problem(&format!("is longer than {max} characters")))
                } else if t.chars().any(char::is_control) {
                    Err(problem("has control characters"))
                } else {
                    Ok(t.to_owned())
                }
            }
            Some(_) => Err(problem("must be text")),
        }
    }

    /// The whole number in `field`, within `range`.
    pub fn integer(&self, field: &str, range: std::ops::RangeInclusive<i64>) -> Result<i64, RowError> {
        let problem = |p: String| RowError::new(self.line, field, p);
        let n = match self.fields.get(field) {
            None | Some(Value::Null) => return Err(problem("is missing".into())),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().parse().ok(),
            Some(Value::String(_)) => return Err(problem("is blank".into())),
            Some(_) => None,
        };
        match n {
            Some(n) if range.contains(&n) => Ok(n),
            Some(_) => Err(problem(format!(
                "must be from {} to {}",
                range.start(),
                range.end()
            ))),
            None => Err(problem("must be a whole number".into())),
        }
    }

    /// Problems with the fields that are not among `known`, each its own.
    fn unknown_fields(&self, known: &[&str]) -> Vec<RowError> {
        self.fields
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| {
                RowError::new(
                    self.line,
                    k.clone(),
                    format!("is not a field of this import (its fields: {})", known.join(", ")),
                )
            })
            .collect()
    }
}

/// What one kind of batch is: its rows' fields, how a row is checked and
/// how checked rows are applied.
pub trait Importer: Send + Sync {
    /// A checked row.
    type Item: Send + Sync;
    /// A row as the API documents it: its fields with their bounds, the ones
    /// [`Importer::check`] holds a row to (the service's test compares them).
    type Row: utoipa::PartialSchema;
    /// The kind of batch, as `import_batches` and the answers name it.
    const KIND: &'static str;
    /// What a row is and what applying it does, for the API document.
    const DESCRIPTION: &'static str;
    /// The fields a row has; any other is a problem.
    const FIELDS: &'static [&'static str];
    /// The scope a caller needs to import (operators' `admin` unless an
    /// importer has a scope of its own).
    const SCOPE: omnisaga_auth::Scope = omnisaga_auth::Scope::Admin;
    /// Checks one row: the item, or each of its problems.
    fn check(&self, row: &Row) -> Result<Self::Item, Vec<RowError>>;
    /// A key two rows of one batch may not share (the SKU), if any.
    fn key<'a>(&self, item: &'a Self::Item) -> Option<&'a str>;
    /// Applies every item, in `tx`; the batch's transaction commits after.
    fn apply(
        &self,
        tx: &mut PgConnection,
        items: &[Self::Item],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// What a batch came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub batch_id: String,
    pub kind: &'static str,
    #[schema(minimum = 1)]
    pub rows: usize,
    /// true: this id was applied before and nothing was applied now.
    pub replayed: bool,
}

#[cfg(test)]
mod tests;
