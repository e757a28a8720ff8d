//! A batch's file read into rows (CSV or JSON lines) and its `Batch-Id`,
//! and the rows checked by the importer: every problem, or the items.

use axum::http::{header::CONTENT_TYPE, HeaderMap, StatusCode};
use serde_json::Value;

use super::{Importer, Row, RowError, MAX_BYTES, MAX_ROWS};
use crate::edge::http::ApiError;

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

pub(super) fn too_large(message: String) -> ApiError {
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
