//! A service's read models rebuilt through its admin API, as an operator
//! starts and follows a run (`POST /v1/admin/rebuilds`, then its
//! `Location`), with both answers checked against the service's document,
//! and the differences a run reports read back for assertions.

use std::time::Duration;

use serde_json::{json, Value};

use crate::testing::{auth, openapi, wait_for, TestApp};

/// Most a run may take in a test.
const WITHIN: Duration = Duration::from_secs(30);

/// Runs a rebuild of `service`'s projections at `app` in `mode` (`verify`
/// or `rebuild`), all of them or `projections`, and waits for it to end:
/// the run, which must have finished.
pub async fn run(app: &TestApp, service: &str, mode: &str, projections: Option<&[&str]>) -> Value {
    let admin = auth::client_with(&auth::admin_token());
    let mut body = json!({ "mode": mode });
    if let Some(names) = projections {
        body["projections"] = json!(names);
    }
    let resp = admin
        .post(format!("{}/v1/admin/rebuilds", app.admin_url))
        .json(&body)
        .send()
        .await
        .expect("a rebuild request sent");
    assert_eq!(resp.status(), 202, "a rebuild starts");
    let location = resp.headers()["location"]
        .to_str()
        .expect("a Location")
        .to_owned();
    let started: Value = resp.json().await.expect("a JSON body");
    openapi::check_response(service, "post", "/v1/admin/rebuilds", 202, &started).unwrap();
    let run = wait_for("the rebuild to end", WITHIN, || async {
        let run: Value = admin
            .get(format!("{}{location}", app.admin_url))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (run["status"] != "running").then_some(run)
    })
    .await
    .unwrap();
    openapi::check_response(service, "get", "/v1/admin/rebuilds/{id}", 200, &run).unwrap();
    assert_eq!(run["status"], "finished", "{run}");
    run
}

/// The report of `table` in `run` (of whichever projection writes it).
pub fn table<'a>(run: &'a Value, table: &str) -> &'a Value {
    run["report"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["tables"].as_array().into_iter().flatten())
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no report of {table} in {run}"))
}

/// Asserts that `report` (a table's) counts `missing`, `extra` and
/// `different` rows, names each of `examples` (`missing <key>`, ...) and
/// repaired nothing yet.
pub fn assert_found(report: &Value, (missing, extra, different): (i64, i64, i64), examples: &[String]) {
    assert_eq!(
        (&report["missing"], &report["extra"], &report["different"]),
        (&json!(missing), &json!(extra), &json!(different)),
        "{report}"
    );
    let named: Vec<&str> = report["examples"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for expected in examples {
        assert!(named.contains(&expected.as_str()), "{expected} in {named:?}");
    }
    assert_eq!(report["repaired"], 0, "a verify repairs nothing: {report}");
}
