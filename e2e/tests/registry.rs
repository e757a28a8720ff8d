//! The registry in `schemas/` agrees with the code: topics, message types,
//! the descriptor set, error codes and every HTTP route.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use omnisaga_runtime::{catalog, config::Topics};
use prost::Message;
use prost_types::FileDescriptorSet;
use serde_json::Value;

fn root() -> PathBuf {
    omnisaga_e2e::repo_root().expect("the tests run inside the clone")
}

fn json(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// Every source file of a crate, whitespace collapsed (so formatting does not matter).
fn sources(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.push_str(&sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push_str(&text.split_whitespace().collect::<Vec<_>>().join(" "));
            out.push('\n');
        }
    }
    out
}

/// The string literal right after each occurrence of `marker` (skipping one argument when `skip_arg`).
fn literals_after(text: &str, marker: &str, skip_arg: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices(marker) {
        let mut rest = &text[i + marker.len()..];
        if skip_arg {
            let Some(comma) = rest.find(',') else { continue };
            rest = &rest[comma + 1..];
        }
        let rest = rest.trim_start();
        if let Some(lit) = rest.strip_prefix('"') {
            if let Some(end) = lit.find('"') {
                found.insert(lit[..end].to_owned());
            }
        }
    }
    found
}

/// Message name -> (field name, number, type) of every omnisaga.v1 message.
fn messages(set: &FileDescriptorSet) -> BTreeMap<String, BTreeSet<(String, i32, i32, String)>> {
    set.file
        .iter()
        .filter(|f| f.package() == "omnisaga.v1")
        .flat_map(|f| &f.message_type)
        .map(|m| {
            let fields = m
                .field
                .iter()
                .map(|f| {
                    (
                        f.name().to_owned(),
                        f.number(),
                        f.r#type.unwrap_or_default(),
                        f.type_name().to_owned(),
                    )
                })
                .collect();
            (m.name().to_owned(), fields)
        })
        .collect()
}

fn descriptor_sets() -> (FileDescriptorSet, FileDescriptorSet) {
    let published = std::fs::read(root().join("schemas/omnisaga_v1.binpb")).unwrap();
    (
        FileDescriptorSet::decode(published.as_slice()).unwrap(),
        FileDescriptorSet::decode(omnisaga_proto::DESCRIPTOR_SET).unwrap(),
    )
}

#[test]
fn the_published_descriptor_set_matches_the_proto_files() {
    let (published, built) = descriptor_sets();
    assert_eq!(
        messages(&published),
        messages(&built),
        "schemas/omnisaga_v1.binpb is stale: regenerate it (see schemas/README.md)"
    );
}

/// The services name, create and subscribe to topics from the catalog the
/// runtime compiles in (`omnisaga_runtime::catalog`, whose tests hold it
/// together and to the `Envelope`'s payloads); here, that it is this file
/// and that every topic keeps the prose other teams read.
#[test]
fn the_topic_catalog_is_the_one_the_services_use_and_documents_every_topic() {
    let published = json("schemas/topics.json");
    let topics = published["topics"].as_array().unwrap();
    let names: Vec<&str> = topics.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, Topics::new(catalog::DEFAULT_PREFIX).all());
    for (t, used) in topics.iter().zip(catalog::catalog().topics()) {
        let name = t["name"].as_str().unwrap();
        assert_eq!(
            t["dead_letter_topic"],
            used.dead_letter_name(catalog::DEFAULT_PREFIX),
            "{name}"
        );
        assert_eq!(
            t["message_types"],
            serde_json::json!(used.message_types),
            "{name}"
        );
        for field in ["owner", "key", "retention", "purpose", "consumers", "envelope"] {
            assert!(!t[field].is_null(), "{name} has no {field}");
        }
    }
}

#[test]
fn every_error_code_in_the_code_is_documented_and_every_documented_one_is_used() {
    let mut code = sources(&root().join("services"));
    code.push_str(&sources(&root().join("crates")));
    let mut used = literals_after(&code, "::new( StatusCode::", true);
    used.extend(literals_after(&code, "::new(StatusCode::", true));
    used.extend(literals_after(&code, "::bad_request(", false));
    used.extend(literals_after(&code, "::conflict(", false));
    let registry = json("schemas/errors.json");
    let documented: BTreeSet<String> = registry["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reserved"] != true)
        .map(|e| e["code"].as_str().unwrap().to_owned())
        .collect();
    assert!(used.len() >= 10, "the scan found too few codes: {used:?}");
    assert_eq!(used, documented, "schemas/errors.json and the code disagree");
}

/// (path, method) of every route registered in `text` (`.route(...)`, and
/// `Routes::open(...)` for an open one).
fn routes(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let chunks = text.split(".route(").skip(1).chain(text.split(".open(").skip(1));
    for chunk in chunks {
        let Some(path) = chunk
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split('"').next())
        else {
            continue;
        };
        // The handlers of this route: up to the next builder call.
        let end = [
            ".route(",
            ".open(",
            ".with_state(",
            ".layer(",
            ".merge(",
            ".fallback(",
        ]
        .iter()
        .filter_map(|m| chunk.find(m))
        .min()
        .unwrap_or(chunk.len());
        for method in ["get", "post", "put", "delete", "patch"] {
            if chunk[..end].contains(&format!("{method}(")) {
                out.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
    // Batch imports: `batch::routes("/v1/.../batch", ...)` is a POST.
    for chunk in text.split("batch::routes(").skip(1) {
        if let Some(path) = chunk
            .trim_start()
            .strip_prefix('"')
            .and_then(|p| p.split('"').next())
        {
            out.insert((path.to_owned(), "post".to_owned()));
        }
    }
    out
}

#[test]
fn every_route_of_every_service_is_in_its_openapi_document_and_nothing_else() {
    let runtime = routes(&sources(&root().join("crates/runtime/src")));
    for service in ["order", "payment", "warehouse", "notification", "analytics"] {
        let mut code = routes(&sources(&root().join(format!("services/{service}/src"))));
        code.extend(runtime.iter().cloned());
        let doc = json(&format!("schemas/openapi/{service}.json"));
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (path.clone(), m.clone()))
            })
            .collect();
        assert_eq!(
            code, documented,
            "schemas/openapi/{service}.json and the routes of {service} disagree"
        );
    }
}
