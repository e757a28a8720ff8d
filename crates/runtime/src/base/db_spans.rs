//! What tracing costs per statement: the database client spans, which a
//! service may turn off (`TRACE_DB_SPANS=off`), and the count of statements
//! every step's span carries either way ([`STATEMENT_COUNT`]), so a trace
//! still says how many statements each step made.
//!
//! The count is kept per Tokio task: [`counted`] opens a count around a
//! step, [`super::db::span`] adds one for each statement it names, and the
//! step's span gets the total when the step is done. A count opened inside
//! another adds its total to the outer one when it closes.

use std::{
    cell::Cell,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
};

/// The attribute of a step's span (a consumer's `process`, a worker's, an
/// HTTP request's) that holds how many statements the step made. Semantic
/// conventions have no attribute for it (`db.operation.batch.size` counts
/// the operations of one batch call), hence the project's own namespace.
/// A span that records it declares the field `omnisaga.db.statement_count`
/// as `tracing::field::Empty`.
pub const STATEMENT_COUNT: &str = "omnisaga.db.statement_count";

static DB_SPANS: AtomicBool = AtomicBool::new(true);

tokio::task_local! {
    static STATEMENTS: Cell<u32>;
}

/// Turns the database client spans on or off for the whole process
/// (`TRACE_DB_SPANS`); they are on until turned off.
pub fn set_spans(on: bool) {
    DB_SPANS.store(on, Ordering::Relaxed);
}

/// Whether [`super::db::span`] makes spans.
pub fn spans_on() -> bool {
    DB_SPANS.load(Ordering::Relaxed)
}

/// Counts one statement in the count the current task has open, if any:
/// what [`super::db::span`] does, and what a statement without a span
/// calls itself.
pub fn count_statement() {
    let _ = STATEMENTS.try_with(|n| n.set(n.get().saturating_add(1)));
}

/// Runs `step`, counting the statements it makes on this task, and records
/// the count on `span` under [`STATEMENT_COUNT`]. The count is added to the
/// one of an enclosing step, if any.
pub async fn counted<F: Future>(span: &tracing::Span, step: F) -> F::Output {
    let (out, made) = STATEMENTS
        .scope(Cell::new(0), async move {
            let out = step.await;
            (out, STATEMENTS.with(Cell::get))
        })
        .await;
    let _ = STATEMENTS.try_with(|n| n.set(n.get().saturating_add(made)));
    span.record(STATEMENT_COUNT, made);
    out
}

/// The statements counted so far in the count this task has open (0 with
/// none open).
pub fn statements_so_far() -> u32 {
    STATEMENTS.try_with(Cell::get).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_count_adds_its_statements_to_the_enclosing_one() {
        let span = tracing::Span::none();
        let (inner, outer) = counted(&span, async {
            count_statement();
            let inner = counted(&span, async {
                count_statement();
                count_statement();
                statements_so_far()
            })
            .await;
            (inner, statements_so_far())
        })
        .await;
        assert_eq!((inner, outer), (2, 3));
        assert_eq!(statements_so_far(), 0, "no count is open outside a step");
        count_statement(); // outside a step: counted nowhere, no panic
    }
}
