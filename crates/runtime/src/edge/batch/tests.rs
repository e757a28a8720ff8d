//! Reading and checking a batch's rows, and its `Batch-Id`.

use axum::http::{header::CONTENT_TYPE, HeaderMap};
use sqlx::PgConnection;

use super::*;

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TestRow {
    sku: String,
    quantity: i64,
}

struct Stock;

impl Importer for Stock {
    type Item = (String, i64);
    type Row = TestRow;
    const KIND: &'static str = "stock";
    const DESCRIPTION: &'static str = "A row per SKU.";
    const FIELDS: &'static [&'static str] = &["sku", "quantity"];
    fn check(&self, row: &Row) -> Result<Self::Item, Vec<RowError>> {
        match (row.text("sku", 64), row.integer("quantity", 1..=1000)) {
            (Ok(sku), Ok(q)) => Ok((sku, q)),
            (a, b) => Err(a.err().into_iter().chain(b.err()).collect()),
        }
    }
    fn key<'a>(&self, item: &'a Self::Item) -> Option<&'a str> {
        Some(&item.0)
    }
    async fn apply(&self, _: &mut PgConnection, _: &[Self::Item]) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

fn headers(content_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, content_type.parse().unwrap());
    h
}

#[test]
fn csv_and_json_lines_read_as_the_same_rows() {
    let csv = read(
        &headers("text/csv; charset=utf-8"),
        b"sku,quantity\nA, 3\n\nB,4\n",
    )
    .unwrap();
    let jsonl = read(
        &headers("application/x-ndjson"),
        b"{\"sku\":\"A\",\"quantity\":3}\n\n{\"sku\":\"B\",\"quantity\":\"4\"}\n",
    )
    .unwrap();
    for rows in [&csv, &jsonl] {
        assert_eq!(
            check(&Stock, rows).unwrap(),
            vec![("A".into(), 3), ("B".into(), 4)]
        );
    }
    assert_eq!(csv.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(jsonl.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 3]);
}

#[test]
fn every_problem_of_every_row_is_reported_with_its_line_and_field() {
    let rows = read(
        &headers("text/csv"),
        b"sku,quantity,price\nA,3,\n,0,\nA,x,5\nC,2000,\n",
    )
    .unwrap();
    let problems = check(&Stock, &rows).unwrap_err();
    let got: Vec<(usize, &str)> = problems.iter().map(|p| (p.line, p.field.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (3, "sku"),
            (3, "quantity"),
            (4, "price"),
            (4, "quantity"),
            (5, "quantity")
        ]
    );
    assert!(problems[1].problem.contains("from 1 to 1000"), "{problems:?}");
}

#[test]
fn a_key_twice_is_a_problem_of_the_later_line() {
    let rows = read(&headers("text/csv"), b"sku,quantity\nA,1\nB,1\nA,2\n").unwrap();
    let problems = check(&Stock, &rows).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!((problems[0].line, problems[0].field.as_str()), (4, "sku"));
    assert!(problems[0].problem.contains("line 2"), "{problems:?}");
}

#[test]
fn files_that_cannot_be_read_are_refused_whole() {
    let code = |ct: &str, body: &[u8]| read(&headers(ct), body).unwrap_err().code;
    assert_eq!(code("application/json", b"[]"), "unsupported_media_type");
    assert_eq!(code("text/csv", b"sku,quantity\n"), "validation_failed");
    assert_eq!(code("text/csv", b"sku,sku\nA,B\n"), "unreadable_batch");
    assert_eq!(code("text/csv", b"sku,quantity\nA,1,extra\n"), "unreadable_batch");
    assert_eq!(
        code("application/x-ndjson", b"{\"sku\":\"A\"}\n[1]\n"),
        "unreadable_batch"
    );
    assert_eq!(code("application/x-ndjson", b"{\"sku\":\n"), "unreadable_batch");
    let many = format!("sku,quantity\n{}", "A,1\n".repeat(MAX_ROWS + 1));
    assert_eq!(code("text/csv", many.as_bytes()), "payload_too_large");
    assert_eq!(code("text/csv", &vec![b' '; MAX_BYTES + 1]), "payload_too_large");
}

#[test]
fn the_batch_id_is_required_and_bounded() {
    let mut h = HeaderMap::new();
    assert_eq!(batch_id(&h).unwrap_err().code, "missing_batch_id");
    h.insert("batch-id", "a b".parse().unwrap());
    assert_eq!(batch_id(&h).unwrap_err().code, "invalid_batch_id");
    h.insert("batch-id", "x".repeat(129).parse().unwrap());
    assert_eq!(batch_id(&h).unwrap_err().code, "invalid_batch_id");
    h.insert("batch-id", "seed-2026-12".parse().unwrap());
    assert_eq!(batch_id(&h).unwrap(), "seed-2026-12");
}
