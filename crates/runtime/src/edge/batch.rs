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

use std::{collections::BTreeMap, future::Future, sync::Arc};

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, DefaultBodyLimit, State},
    http::{header::CONTENT_TYPE, HeaderMap, StatusCode},
    routing::post,
    Json,
};
use omnisaga_auth::Scope;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

use crate::{edge::auth::Caller, edge::http::ApiError, edge::openapi::error_response, edge::routes::Routes};

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

/// The OpenAPI path item of [`routes`] for `I`: the operation, its
/// `Batch-Id`, the three body types with `I::Row` as each row's schema, and
/// the answers [`import`] gives. `openapi::document` completes it.
pub fn path_item<I: Importer>() -> Value {
    use utoipa::PartialSchema;
    let mut outcome = serde_json::to_value(Outcome::schema()).expect("a schema serializes");
    outcome["properties"]["kind"] = json!({"const": I::KIND});
    let row = serde_json::to_value(I::Row::schema()).expect("a schema serializes");
    let documented: std::collections::BTreeSet<&str> = row["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys().map(String::as_str))
        .collect();
    assert_eq!(
        documented,
        I::FIELDS.iter().copied().collect(),
        "the {} import's Row documents other fields than its FIELDS",
        I::KIND
    );
    json!({"post": {
        "tags": ["imports"],
        "summary": format!("Import {} rows in one batch, applied whole or not at all (admin)", I::KIND),
        "description": format!(
            "{} The body is CSV with a header line (text/csv) or JSON lines (application/x-ndjson, \
             application/jsonl), a row per line. Every row is checked first; when any row has a problem \
             nothing is applied and the 422 lists each problem (line, field, problem; line 1 is a CSV \
             file's header). Otherwise every row is applied in one transaction. The same Batch-Id sent \
             again with the same body answers 200 with replayed: true and applies nothing; with another \
             body, 409. At most {} MiB and {} rows.",
            I::DESCRIPTION, MAX_BYTES >> 20, MAX_ROWS
        ),
        "operationId": format!("import_{}", I::KIND),
        "security": [{"bearer": ["admin"]}],
        "parameters": [{
            "name": "Batch-Id", "in": "header", "required": true,
            "description": "Names the batch: applied once, whatever number of times it is sent.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
        }],
        "requestBody": {"required": true, "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}, "x-row-schema": row},
            "application/jsonl": {"schema": {"type": "string"}},
        }},
        "responses": {
            "200": {"description": "applied now, or before under this Batch-Id with this body (replayed)",
                    "content": {"application/json": {"schema": outcome}}},
            "400": error_response("400", "missing_batch_id, invalid_batch_id (1 to 128 visible ASCII characters) or unreadable_batch (not UTF-8, a CSV without a header, a line that is no JSON object)"),
            "409": error_response("409", "batch_id_reused: this Batch-Id was applied with another body"),
            "413": error_response("413", "payload_too_large: over the size or row limit"),
            "422": error_response("422", &format!("validation_failed: details.errors lists the problems as {{line, field, problem}} (the first {MAX_LISTED}; details.problems counts them all); nothing was applied")),
        },
    }})
}

/// The `Batch-Id` header: 1 to 128 visible ASCII characters.
pub fn batch_id(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get("batch-id") else {
        return Err(ApiError::bad_request(
            "missing_batch_id",
            "a batch import needs a Batch-Id header: the same id sent again is not applied twice",
        ));
    };
    match value.to_str() {
        Ok(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(id.to_owned())
        }
        _ => Err(ApiError::bad_request(
            "invalid_batch_id",
            "the Batch-Id must be 1 to 128 visible ASCII characters",
        )),
    }
}

/// The file's rows, read as its `Content-Type` says: `text/csv` (a header
/// line naming the fields, then a row per line) or JSON lines
/// (`application/x-ndjson`, `application/jsonl`: an object per line; blank
/// lines are skipped). Whether the file can be read at all; row problems
/// come later, from the importer.
pub fn read(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Row>, ApiError> {
    if body.len() > MAX_BYTES {
        return Err(too_large(format!("a batch is at most {} MiB", MAX_BYTES >> 20)));
    }
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let rows = match media.as_str() {
        "text/csv" => csv_rows(body)?,
        "application/x-ndjson" | "application/jsonl" | "application/json-lines" => json_lines(body)?,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "a batch is text/csv or JSON lines (application/x-ndjson)",
            ))
        }
    };
    if rows.is_empty() {
        return Err(ApiError::validation("the batch has no rows"));
    }
    if rows.len() > MAX_ROWS {
        return Err(too_large(format!(
            "a batch has at most {MAX_ROWS} rows; split the file"
        )));
    }
    Ok(rows)
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
}

fn unreadable(line: usize, problem: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("unreadable_batch", format!("line {line}: {problem}"))
}

fn csv_rows(body: &[u8]) -> Result<Vec<Row>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| unreadable(1, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for name in &names {
        if name.is_empty() {
            return Err(unreadable(1, "a column of the header line has no name"));
        }
        if !seen.insert(name) {
            return Err(unreadable(1, format!("the column {name} appears twice")));
        }
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| unreadable(e.position().map_or(0, |p| line_at(body, p)), e))?;
        let line = record.position().map_or(0, |p| line_at(body, p));
        if record.iter().all(str::is_empty) {
            continue;
        }
        let fields = names
            .iter()
            .zip(record.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), Value::String(v.to_owned())))
            .collect();
        rows.push(Row { line, fields });
        if rows.len() > MAX_ROWS {
            break;
        }
    }
    Ok(rows)
}

/// The line a CSV record starts on. The csv crate's line count and offset
/// count blank lines before a record as its own, so from the offset past them.
fn line_at(body: &[u8], position: &csv::Position) -> usize {
    let mut at = usize::try_from(position.byte())
        .unwrap_or(usize::MAX)
        .min(body.len());
    while at < body.len() && matches!(body[at], b'\n' | b'\r') {
        at += 1;
    }
    1 + body[..at].iter().filter(|&&b| b == b'\n').count()
}

fn json_lines(body: &[u8]) -> Result<Vec<Row>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| unreadable(0, format!("not UTF-8: {e}")))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => map.into_iter().collect(),
            Ok(_) => return Err(unreadable(i + 1, "a row must be a JSON object")),
            Err(e) => return Err(unreadable(i + 1, format!("not JSON: {e}"))),
        };
        rows.push(Row { line: i + 1, fields });
        if rows.len() > MAX_ROWS {
            break;
        }
    }
    Ok(rows)
}

/// Checks every row of `rows` with `importer`: the items, or every problem
/// (unknown fields, bad values, a key twice).
pub fn check<I: Importer>(importer: &I, rows: &[Row]) -> Result<Vec<I::Item>, Vec<RowError>> {
    let mut items = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    let mut first_line = std::collections::HashMap::new();
    for row in rows {
        problems.extend(row.unknown_fields(I::FIELDS));
        match importer.check(row) {
            Ok(item) => {
                if let Some(key) = importer.key(&item) {
                    if let Some(line) = first_line.insert(key.to_owned(), row.line) {
                        problems.push(RowError::new(
                            row.line,
                            "sku",
                            format!("{key} is on line {line} already; a batch names it once"),
                        ));
                    }
                }
                items.push(item);
            }
            Err(errors) => problems.extend(errors),
        }
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(problems)
    }
}

/// Imports the batch in `body` under the request's `Batch-Id`, applied by
/// `importer` in one transaction, or not at all: the answer to
/// `POST /v1/.../batch`. `subject` is who sent it.
pub async fn import<I: Importer>(
    pool: &PgPool,
    importer: &I,
    headers: &HeaderMap,
    body: &[u8],
    subject: &str,
) -> Result<Outcome, ApiError> {
    let batch_id = batch_id(headers)?;
    let rows = read(headers, body)?;
    let items = check(importer, &rows).map_err(|problems| {
        let invalid_rows = problems
            .iter()
            .map(|p| p.line)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let listed = &problems[..problems.len().min(MAX_LISTED)];
        ApiError::validation(format!(
            "{invalid_rows} of {} rows have problems ({} in all); nothing was applied",
            rows.len(),
            problems.len()
        ))
        .with_details(json!({
            "rows": rows.len(),
            "invalid_rows": invalid_rows,
            "problems": problems.len(),
            "errors": listed,
        }))
    })?;
    let digest = digest(body);
    let mut tx = pool.begin().await?;
    // The id's row first: a second request with it waits here for the first
    // to commit, then finds it.
    let claimed = sqlx::query(
        "INSERT INTO import_batches (kind, batch_id, body_sha256, rows, subject) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (kind, batch_id) DO NOTHING",
    )
    .bind(I::KIND)
    .bind(&batch_id)
    .bind(&digest[..])
    .bind(i32::try_from(rows.len()).unwrap_or(i32::MAX))
    .bind(subject)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        let earlier: Vec<u8> =
            sqlx::query_scalar("SELECT body_sha256 FROM import_batches WHERE kind = $1 AND batch_id = $2")
                .bind(I::KIND)
                .bind(&batch_id)
                .fetch_one(&mut *tx)
                .await?;
        if earlier != digest {
            return Err(ApiError::conflict(
                "batch_id_reused",
                format!("batch {batch_id} was applied with another file; a new file needs a new Batch-Id"),
            ));
        }
        return Ok(Outcome {
            batch_id,
            kind: I::KIND,
            rows: rows.len(),
            replayed: true,
        });
    }
    importer.apply(&mut tx, &items).await?;
    tx.commit().await?;
    tracing::info!(kind = I::KIND, batch_id = %batch_id, rows = rows.len(), "batch applied");
    Ok(Outcome {
        batch_id,
        kind: I::KIND,
        rows: rows.len(),
        replayed: false,
    })
}

/// The route `POST path` importing batches with `importer`, for operators
/// (`admin`), taking files of up to [`MAX_BYTES`].
pub fn routes<I: Importer + 'static>(path: &str, pool: PgPool, importer: I) -> Routes {
    Routes::new()
        .route(
            path,
            Scope::Admin,
            post(handle::<I>).layer(DefaultBodyLimit::max(MAX_BYTES)),
        )
        .with_state((pool, Arc::new(importer)))
}

async fn handle<I: Importer + 'static>(
    State((pool, importer)): State<(PgPool, Arc<I>)>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Outcome>, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(format!("a batch is at most {} MiB", MAX_BYTES >> 20))
        } else {
            ApiError::bad_request("bad_request", e.body_text())
        }
    })?;
    Ok(Json(
        import(&pool, &*importer, &headers, &body, caller.subject()).await?,
    ))
}

fn digest(body: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(body).into()
}

#[cfg(test)]
mod tests {
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
}
