//! The docs a newcomer reads (README.md, CONTRIBUTING.md, docs/**/*.md)
//! name only what exists. Needs no stack.
//!
//! Checked, outside fenced code blocks (shell sessions and examples):
//! - every relative link leads to a file or folder of the repository, and
//!   its `#anchor`, when it has one, to a heading of the Markdown file it
//!   names (GitHub's anchors);
//! - every inline code span that names a path of the repository does: a
//!   word (of a span's words, so `kubectl apply -k infra/k8s` too) starting
//!   with a top-level folder (`services/order/src/api/mod.rs`,
//!   `tools/chaos/src/faults.rs`), or a span that is a file name ending in
//!   `.rs`, `.sql` or `.proto`, which some path must end with
//!   (`domain/proptests.rs`); `<name>` and `*` stand for any part of a
//!   segment;
//! - every inline code span that names Rust: a path with `::`
//!   (`Catalog::drift`, `omnisaga_runtime::work::Worker`,
//!   `failpoint::hit(NAME)`), each of whose segments must be an identifier
//!   of the workspace's Rust code (comments left out) unless it starts with
//!   an outside crate (`std`, `tokio`, ...); or a `snake_case()` call,
//!   which must be called or defined as a function in the workspace's Rust
//!   or SQL (`spawn_app()`, `clock_timestamp()`).
//!
//! Environment variables, shell commands, URLs and SQL are not checked.

#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/repo.rs"]
mod repo;

use std::{fs, path::Path};

use repo::{is_ident_char, Repo};

/// The extensions of a file name the docs may name without its folder.
const BARE: [&str; 3] = [".rs", ".sql", ".proto"];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The docs checked, relative to the root.
fn docs(repo: &Repo) -> Vec<String> {
    let mut files = vec!["README.md".to_owned(), "CONTRIBUTING.md".to_owned()];
    let mut under_docs: Vec<String> = repo
        .paths
        .iter()
        .filter(|p| p.starts_with("docs/") && p.ends_with(".md"))
        .cloned()
        .collect();
    under_docs.sort();
    files.extend(under_docs);
    files
}

/// Every problem of one document: `file:line: what`.
fn check(repo: &Repo, file: &str, text: &str) -> Vec<String> {
    let parsed = markdown::parse(text);
    let dir = Path::new(file).parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for link in &parsed.links {
        if let Some(problem) = check_link(repo, dir, &parsed.anchors, &link.item) {
            problems.push((link.line, format!("link `{}`: {problem}", link.item)));
        }
    }
    for code in &parsed.code {
        for problem in check_code(repo, &code.item) {
            problems.push((code.line, format!("`{}`: {problem}", code.item)));
        }
    }
    problems.sort_by_key(|(line, _)| *line);
    problems
        .into_iter()
        .map(|(line, problem)| format!("{file}:{line}: {problem}"))
        .collect()
}

fn check_link(repo: &Repo, dir: &Path, anchors: &[String], target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let anchors_there = if path.is_empty() {
        anchors.to_vec()
    } else {
        let Some(relative) = normalise(&dir.join(path)) else {
            return Some("leads outside the repository".into());
        };
        if !repo.exists(&relative) {
            return Some(format!("no file or folder `{relative}`"));
        }
        match anchor {
            Some(_) if relative.ends_with(".md") => {
                let text = fs::read_to_string(repo.root.join(&relative)).unwrap_or_default();
                markdown::parse(&text).anchors
            }
            _ => return None,
        }
    };
    let anchor = anchor?;
    (!anchors_there.iter().any(|a| a == anchor)).then(|| format!("no heading with the anchor `#{anchor}`"))
}

/// `docs/../README.md` as `README.md`; `None` when it climbs past the root.
fn normalise(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    Some(parts.join("/"))
}

fn check_code(repo: &Repo, span: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for word in span.split_whitespace() {
        let word = word
            .trim_matches(|c: char| "\"'(),;`".contains(c))
            .trim_end_matches('.');
        // `crates/runtime/src/config.rs:265` names the file.
        let word = match word.rsplit_once(':') {
            Some((path, line)) if line.chars().all(|c| c.is_ascii_digit()) && !line.is_empty() => path,
            _ => word,
        };
        let top = word.split('/').next().unwrap_or("");
        if word.contains('/') && repo.top.contains(top) && !repo.exists(word) {
            problems.push(format!("no file or folder `{word}`"));
        }
    }
    if !span.contains(char::is_whitespace) && !span.starts_with('/') && BARE.iter().any(|e| span.ends_with(e))
    {
        let top = span.split('/').next().unwrap_or("");
        if !repo.top.contains(top) && !repo.ends_with(span) {
            problems.push(format!("no file ending with `{span}`"));
        }
    }
    problems.extend(check_rust(repo, span));
    problems
}

fn check_rust(repo: &Repo, span: &str) -> Option<String> {
    let path: String = span
        .chars()
        .take_while(|&c| is_ident_char(c) || c == ':')
        .collect();
    let rest = &span[path.len()..];
    let segments: Vec<&str> = path.split("::").collect();
    if path.contains("::") && (rest.is_empty() || rest.starts_with('(') || rest.starts_with('<')) {
        if segments.iter().any(|s| s.is_empty()) || repo.external.contains(segments[0]) {
            return None;
        }
        let unknown: Vec<&str> = segments
            .iter()
            .copied()
            .filter(|s| !repo.words.contains(*s))
            .collect();
        return (!unknown.is_empty())
            .then(|| format!("{} in no Rust code of the workspace", unknown.join(", ")));
    }
    let is_call = rest == "()"
        && path
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    (is_call && !path.is_empty() && !repo.functions.contains(&path))
        .then(|| format!("`{path}` is no function of the workspace's Rust or SQL"))
}

#[test]
fn every_link_and_code_reference_of_the_docs_exists() {
    let repo = Repo::load(root());
    let files = docs(&repo);
    assert!(files.len() > 5, "found the docs: {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let text = fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        problems.extend(check(&repo, file, &text));
    }
    assert!(
        problems.is_empty(),
        "{} names what does not exist:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_readme_stays_short_and_links_into_docs() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines < 400, "README.md has {lines} lines: move detail into docs/");
    for page in ["architecture.md", "glossary.md", "configuration.md", "deploy.md"] {
        assert!(
            readme.contains(&format!("](docs/{page})")),
            "README.md does not link docs/{page}"
        );
    }
}

/// The code of the first fenced block that starts with `first_line`.
fn mermaid(text: &str, first_line: &str) -> String {
    let opening = format!("```mermaid\n{first_line}\n");
    let start = text
        .find(&opening)
        .unwrap_or_else(|| panic!("no mermaid `{first_line}` block"))
        + opening.len();
    text[start..start + text[start..].find("```").unwrap()].to_owned()
}

#[test]
fn the_architecture_draws_every_order_status_and_both_synchronous_calls() {
    let architecture = fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let domain = fs::read_to_string(root().join("services/order/src/domain.rs")).unwrap();
    let states = mermaid(&architecture, "stateDiagram-v2");
    // Each `Status::X => "X"` of the order's domain is a state of the diagram.
    let statuses: Vec<&str> = domain
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Status::"))
        .filter_map(|l| l.split('"').nth(1))
        .collect();
    assert!(
        statuses.len() >= 6,
        "read the statuses of domain.rs: {statuses:?}"
    );
    for status in statuses {
        assert!(
            states.contains(&format!("--> {status}")),
            "the state diagram never reaches {status}"
        );
    }
    let flow = mermaid(&architecture, "flowchart TB");
    let order_api = fs::read_to_string(root().join("services/order/src/api/mod.rs")).unwrap();
    let payment_asks = fs::read_to_string(root().join("services/payment/src/orders.rs")).unwrap();
    let catalog = fs::read_to_string(root().join("services/order/src/api/catalog.rs")).unwrap();
    for (call, code) in [
        ("/v1/internal/orders/{id}/payment-methods/{attempt}", &order_api),
        ("/v1/stock", &catalog),
    ] {
        assert!(
            code.contains(call),
            "the code no longer calls {call}: redraw docs/architecture.md"
        );
        assert!(
            flow.contains(call),
            "the architecture's flowchart does not draw {call}"
        );
    }
    assert!(
        payment_asks.contains("/payment-methods/"),
        "payment no longer asks the order service"
    );
}

#[test]
fn the_check_finds_what_does_not_exist() {
    let repo = Repo::load(root());
    let planted = "\
# Title

## Two words

[fine](#two-words) [fine too](../README.md#two-commands) [fine](https://example.com/x)
[gone](missing.md) [bad anchor](#three-words) [bad anchor there](../README.md#no-such-heading)
`services/order/src/no_such_file.rs` and `e2e/tests/saga.rs` and `tools/chaos/src/faults.rs`
`no_such_function_anywhere()` but `spawn_app()`; `Catalog::no_such_method` but `Catalog::drift`
`renamed_file.rs` but `domain.rs`; `kubectl apply -k infra/nowhere`; `std::env::var_os` is not ours

[ref]: ../docs/nowhere.md

```sh
[not a link](nowhere.md) `services/not/checked/in/code.rs`
```
";
    let problems = check(&repo, "docs/planted.md", planted);
    let expected = [
        "docs/planted.md:6: link `missing.md`: no file or folder `docs/missing.md`",
        "docs/planted.md:6: link `#three-words`: no heading with the anchor `#three-words`",
        "docs/planted.md:6: link `../README.md#no-such-heading`: no heading with the anchor `#no-such-heading`",
        "docs/planted.md:7: `services/order/src/no_such_file.rs`: no file or folder `services/order/src/no_such_file.rs`",
        "docs/planted.md:8: `no_such_function_anywhere()`: `no_such_function_anywhere` is no function of the workspace's Rust or SQL",
        "docs/planted.md:8: `Catalog::no_such_method`: no_such_method in no Rust code of the workspace",
        "docs/planted.md:9: `renamed_file.rs`: no file ending with `renamed_file.rs`",
        "docs/planted.md:9: `kubectl apply -k infra/nowhere`: no file or folder `infra/nowhere`",
        "docs/planted.md:11: link `../docs/nowhere.md`: no file or folder `docs/nowhere.md`",
    ];
    assert_eq!(problems, expected, "found:\n{}", problems.join("\n"));
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(markdown::slug("The `omnisaga` CLI"), "the-omnisaga-cli");
    assert_eq!(
        markdown::slug("Faults under load: the invariant checker"),
        "faults-under-load-the-invariant-checker"
    );
    assert_eq!(markdown::slug("Kafka users and ACLs"), "kafka-users-and-acls");
    assert_eq!(
        markdown::slug("The order, its states and compensations"),
        "the-order-its-states-and-compensations"
    );
    let parsed = markdown::parse("# A\n\n## A\n\n```\n# not a heading\n```\n");
    assert_eq!(parsed.anchors, ["a", "a-1"]);
}
