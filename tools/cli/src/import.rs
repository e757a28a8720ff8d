//! `omnisaga catalog import FILE` and `omnisaga stock import FILE`: a file
//! of rows sent to the order service's `POST /v1/catalog/batch` or the
//! warehouse's `POST /v1/stock/batch`, with a progress bar.
//!
//! The file is CSV with a header line (`.csv`), JSON lines (`.jsonl`,
//! `.ndjson`) or a JSON array of objects (`.json`: the seed catalog that
//! `CATALOG_SEED_FILE` takes; of its objects only the import's fields are
//! sent, and for stock its `stock` is the quantity). It goes as JSON lines
//! in batches of `--rows-per-batch`, each applied whole or not at all by
//! the service. Batch ids are the file's SHA-256 (or `--batch-id`) and the
//! batch's number, so sending the same file again applies nothing twice:
//! after a failure it sends what did not go.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::{
    cli::{ImportArgs, ImportFormat},
    http, output,
    settings::Settings,
};

/// What is imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Catalog,
    Stock,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Catalog => "catalog",
            Kind::Stock => "stock",
        }
    }

    /// The service that takes it.
    fn service(self) -> &'static str {
        match self {
            Kind::Catalog => "order",
            Kind::Stock => "warehouse",
        }
    }

    /// The fields a seed file's object gives a row: (row field, seed field).
    fn seed_fields(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Catalog => &[
                ("sku", "sku"),
                ("name", "name"),
                ("unit_price_minor", "unit_price_minor"),
                ("currency", "currency"),
            ],
            Kind::Stock => &[("sku", "sku"), ("quantity", "stock")],
        }
    }
}

/// One row and where it is in the file (its line, or its place in a JSON array).
#[derive(Debug, PartialEq)]
struct Row {
    at: usize,
    fields: Map<String, Value>,
}

/// Imports `args.file` as `kind`.
pub async fn run(kind: Kind, args: &ImportArgs, settings: &Settings, json: bool) -> Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("Failed to read {}", args.file.display()))?;
    let format = args.format.map_or_else(|| format_of(&args.file), Ok)?;
    let rows =
        rows(kind, format, &bytes).with_context(|| format!("{} cannot be read", args.file.display()))?;
    if rows.is_empty() {
        bail!("{} has no rows", args.file.display());
    }
    let base = args
        .batch_id
        .clone()
        .unwrap_or_else(|| format!("{}-{}", kind.name(), &hex(&sha2::Sha256::digest(&bytes))[..16]));
    let size = args.rows_per_batch.clamp(1, 20_000);
    let batches: Vec<&[Row]> = rows.chunks(size).collect();
    let client = http::client(settings)?;
    let url = format!("{}/v1/{}/batch", settings.admin_url(kind.service()), kind.name());
    let bar = output::bar(rows.len() as u64, format!("importing {}", kind.name()), json);
    let mut answers = Vec::new();
    let (mut applied, mut replayed) = (0, 0);
    for (n, batch) in batches.iter().enumerate() {
        let id = if batches.len() == 1 {
            base.clone()
        } else {
            format!("{base}-{}-of-{}", n + 1, batches.len())
        };
        let body: String = batch
            .iter()
            .map(|r| Value::Object(r.fields.clone()).to_string() + "\n")
            .collect();
        let resp = client
            .post(&url)
            .header("Batch-Id", &id)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
            .with_context(|| {
                format!(
                    "{} did not answer (is the stack running? set {}_URL)",
                    kind.service(),
                    kind.service().to_uppercase()
                )
            })?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bar.abandon();
            let done = if n == 0 {
                "nothing was imported".to_owned()
            } else {
                format!("the {n} batch(es) before it were imported; running the command again sends the rest")
            };
            if json {
                output::print_json(&answer)?;
            } else if let Some(errors) = answer["details"]["errors"].as_array() {
                print_problems(errors, batch, &answer);
            }
            bail!(
                "{} refused batch {} of {} ({id}): {status}: {}; {done}",
                kind.service(),
                n + 1,
                batches.len(),
                answer["message"].as_str().unwrap_or("request failed"),
            );
        }
        if answer["replayed"].as_bool() == Some(true) {
            replayed += batch.len();
        } else {
            applied += batch.len();
        }
        bar.inc(batch.len() as u64);
        answers.push(answer);
    }
    bar.finish_and_clear();
    if json {
        return output::print_json(&serde_json::json!({ "batches": answers }));
    }
    println!(
        "{}: {} row(s) in {} batch(es) to the {}: {applied} applied, {replayed} imported before (batch id {base})",
        args.file.display(),
        rows.len(),
        batches.len(),
        kind.name()
    );
    Ok(())
}

/// The service's row problems, each at its place in the file.
fn print_problems(errors: &[Value], batch: &[Row], answer: &Value) {
    let mut table = output::table(["LINE", "FIELD", "PROBLEM"]);
    for e in errors {
        let at = e["line"]
            .as_u64()
            .and_then(|l| batch.get((l as usize).checked_sub(1)?))
            .map_or_else(|| output::text(&e["line"]), |r| r.at.to_string());
        table.add_row([at, output::text(&e["field"]), output::text(&e["problem"])]);
    }
    println!("{table}");
    if let Some(all) = answer["details"]["problems"].as_u64() {
        if all > errors.len() as u64 {
            println!("({} more problem(s) not listed)", all - errors.len() as u64);
        }
    }
}

fn format_of(file: &Path) -> Result<ImportFormat> {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(ImportFormat::Csv),
        Some("jsonl" | "ndjson") => Ok(ImportFormat::Jsonl),
        Some("json") => Ok(ImportFormat::Json),
        _ => bail!(
            "cannot tell the format of {} from its name: say --format csv, jsonl or json",
            file.display()
        ),
    }
}

/// The rows of a file of `format`.
fn rows(kind: Kind, format: ImportFormat, bytes: &[u8]) -> Result<Vec<Row>> {
    match format {
        ImportFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes);
            let names = reader.headers().context("its header line")?.clone();
            let mut rows = Vec::new();
            for record in reader.records() {
                let record = record?;
                if record.iter().all(str::is_empty) {
                    continue;
                }
                // The csv crate counts blank lines before a record as its own.
                let at = record.position().map_or(0, |p| {
                    let mut at = usize::try_from(p.byte()).unwrap_or(usize::MAX).min(bytes.len());
                    while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
                        at += 1;
                    }
                    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count()
                });
                let fields = names
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                    .collect();
                rows.push(Row { at, fields });
            }
            Ok(rows)
        }
        ImportFormat::Jsonl => {
            let text = std::str::from_utf8(bytes).context("not UTF-8")?;
            let mut rows = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str(line).with_context(|| format!("line {}", i + 1))? {
                    Value::Object(fields) => rows.push(Row { at: i + 1, fields }),
                    _ => bail!("line {}: a row must be a JSON object", i + 1),
                }
            }
            Ok(rows)
        }
        ImportFormat::Json => {
            let Value::Array(items) = serde_json::from_slice(bytes)? else {
                bail!("a .json file is an array of objects (the seed catalog's form)");
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let Value::Object(mut item) = item else {
                        bail!("item {} is not an object", i + 1);
                    };
                    let fields = kind
                        .seed_fields()
                        .iter()
                        .filter_map(|(field, from)| Some((field.to_string(), item.remove(*from)?)))
                        .collect();
                    Ok(Row { at: i + 1, fields })
                })
                .collect()
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(row: &Row) -> Value {
        Value::Object(row.fields.clone())
    }

    #[test]
    fn csv_rows_keep_their_lines_and_skip_blank_ones() {
        let rows = rows(Kind::Stock, ImportFormat::Csv, b"sku,quantity\nA, 3\n\nB,\n").unwrap();
        assert_eq!(rows.iter().map(|r| r.at).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(fields(&rows[0]), json!({"sku": "A", "quantity": "3"}));
        // An empty value is no value: the service says it is missing.
        assert_eq!(fields(&rows[1]), json!({"sku": "B"}));
    }

    #[test]
    fn a_seed_file_gives_each_import_its_own_fields() {
        let seed =
            br#"[{"sku": "A", "name": "Mug", "unit_price_minor": 1250, "currency": "EUR", "stock": 7}]"#;
        let catalog = rows(Kind::Catalog, ImportFormat::Json, seed).unwrap();
        assert_eq!(
            fields(&catalog[0]),
            json!({"sku": "A", "name": "Mug", "unit_price_minor": 1250, "currency": "EUR"})
        );
        let stock = rows(Kind::Stock, ImportFormat::Json, seed).unwrap();
        assert_eq!(fields(&stock[0]), json!({"sku": "A", "quantity": 7}));
        assert!(rows(Kind::Stock, ImportFormat::Json, b"{}").is_err());
    }

    #[test]
    fn json_lines_that_are_not_objects_are_refused_with_their_line() {
        let err = rows(Kind::Stock, ImportFormat::Jsonl, b"{\"sku\":\"A\"}\n\n[1]\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let ok = rows(
            Kind::Stock,
            ImportFormat::Jsonl,
            b"{\"sku\":\"A\"}\n\n{\"sku\":\"B\"}\n",
        )
        .unwrap();
        assert_eq!(ok.iter().map(|r| r.at).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn the_format_comes_from_the_name_or_is_asked_for() {
        assert_eq!(format_of(Path::new("a/stock.CSV")).unwrap(), ImportFormat::Csv);
        assert_eq!(format_of(Path::new("x.ndjson")).unwrap(), ImportFormat::Jsonl);
        assert!(format_of(Path::new("stock.txt")).is_err());
    }
}
