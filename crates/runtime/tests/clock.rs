//! One clock for leases and deadlines (`omnisaga_runtime::clock`): the
//! services read the wall clock only through `clock::now()`, and only where
//! the time is a record; leases, claims, due times and deadlines are
//! compared in SQL with the database's clock. An instance whose clock is
//! minutes off would otherwise take a lease another instance holds.

use std::path::{Path, PathBuf};

/// Ways to read the wall clock other than `clock::now()`.
const WALL_CLOCK_READS: [&str; 4] = [
    "Utc::now()",
    "SystemTime::now()",
    "Local::now()",
    "OffsetDateTime::now",
];

/// Where the wall clock may be read directly: not a service's.
const DIRECT_READS: [(&str, &str); 6] = [
    ("crates/runtime/src/base/clock.rs", "the clock itself"),
    (
        "crates/auth/src/signer.rs",
        "mints the stack's and operators' tokens; no service mints",
    ),
    (
        "tools/cli/src/since.rs",
        "the operator's `--since 10m`, counted back from their clock",
    ),
    (
        "tools/cli/src/reconcile.rs",
        "when the operator's reconciliation ran, pushed as a metric",
    ),
    (
        "tools/cli/src/find.rs",
        "which of an order's deadlines is next, as the operator's table shows it",
    ),
    (
        "tools/cli/src/why/print.rs",
        "which deadlines passed, as `order why` tells the operator",
    ),
];

/// Where `clock::now()` is read, each a record that nothing compares with a
/// time the database wrote.
const RECORDS: [(&str, &str); 9] = [
    ("crates/runtime/src/es/aggregate.rs", "an event's occurred_at"),
    (
        "services/warehouse/src/store/receipts.rs",
        "a goods-received event's occurred_at",
    ),
    ("crates/runtime/src/boot/logs.rs", "a log line's timestamp"),
    (
        "services/notification/src/webhook.rs",
        "a webhook's signature time, checked by its receiver",
    ),
    (
        "services/notification/src/api.rs",
        "a deprecated route's Sunset headers",
    ),
    (
        "services/order/src/api/orders.rs",
        "an order's estimated delivery date",
    ),
    (
        "services/analytics/src/dashboard.rs",
        "the dashboard's \"as of\" line",
    ),
    (
        "crates/runtime/src/base/exemplars.rs",
        "an exemplar's timestamp, the time its request was observed",
    ),
    (
        "crates/runtime/src/edge/reconcile.rs",
        "refuses a reconciliation window ending in the future: an operator's time, not one the database wrote",
    ),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The non-test Rust sources under `dir`, relative to the repository.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir)
        .expect("a readable source directory")
        .flatten()
    {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !["tests", "testing", "testdata", "target", "fuzz"].contains(&name) {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") && !name.ends_with("tests.rs") {
            let text = std::fs::read_to_string(&path).expect("a readable source");
            // The unit tests at the end of a file are tests too.
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
            let relative = path.strip_prefix(repo()).unwrap_or(&path);
            out.push((relative.to_string_lossy().into_owned(), code));
        }
    }
}

fn workspace_sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    // The product: not the benchmark, the fault suite or the launcher,
    // which time the stack from outside.
    for dir in ["services", "crates", "tools/cli"] {
        sources(&repo().join(dir), &mut out);
    }
    assert!(out.len() > 100, "the workspace's sources were not found");
    out
}

#[test]
fn the_wall_clock_is_read_only_through_the_runtimes_clock() {
    let direct: Vec<String> = workspace_sources()
        .into_iter()
        .filter(|(path, code)| {
            WALL_CLOCK_READS.iter().any(|read| code.contains(read))
                && !DIRECT_READS.iter().any(|(allowed, _)| path.ends_with(allowed))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        direct.is_empty(),
        "these read the wall clock directly; use omnisaga_runtime::clock::now(), and only for a \
         record: a lease or deadline is compared in SQL with now() or clock_timestamp(): {direct:?}"
    );
}

#[test]
fn the_clock_stamps_records_and_never_a_lease_or_deadline() {
    let unlisted: Vec<String> = workspace_sources()
        .into_iter()
        .filter(|(path, code)| {
            !path.ends_with("crates/runtime/src/base/clock.rs")
                && (code.contains("clock::now()") || code.contains("clock::{now"))
                && !RECORDS.iter().any(|(record, _)| path.ends_with(record))
        })
        .map(|(path, _)| path)
        .collect();
    assert!(
        unlisted.is_empty(),
        "the process's clock is read where it is not known to be a record: {unlisted:?}. A lease, \
         claim, due time or deadline is written and compared in SQL with the database's clock \
         (now(), clock_timestamp()), one clock for every instance; a record goes in RECORDS"
    );
}
