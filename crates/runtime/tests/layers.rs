//! The runtime's layers import downward only, and no file of any crate of
//! the workspace imports one that imports it back (CONTRIBUTING.md, "The
//! runtime's layers").
//!
//! Read from the sources: every `crate::a::b` and `super::a` path of a
//! crate's `src/` (comments, strings and `#[cfg(test)] mod x { ... }` left
//! out, as are `tests.rs` and `tests/` folders) names the file of the
//! longest module it starts with; a file naming one of its own ancestors
//! (a submodule its parent) is no edge. A circle is a strongly connected
//! group of two files or more.
//!
//! And a service keeps every statement in its `store.rs`: no other file of
//! its `src/` calls `sqlx::query*` (CONTRIBUTING.md, "Layout of a service").

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The runtime's layers, lowest first: a file may import its own layer's
/// files and those of the layers below, never one above.
const LAYERS: [&str; 7] = ["base", "work", "es", "messaging", "edge", "boot", "testing"];

/// What `crate::` may start with inside the runtime besides a layer: the
/// crates the root re-exports. A module's short name at the root
/// (`crate::http`) is for the services; inside, a path names the layer,
/// or the edge it makes would go unseen.
const ROOT_ALIASES: [&str; 2] = ["catalog", "pb"];

/// The crates each layer may not use: the core and the layers below it
/// know nothing of Kafka or HTTP, messaging nothing of HTTP.
const FORBIDDEN_CRATES: [(&str, &[&str]); 4] = [
    (
        "base",
        &[
            "rdkafka",
            "axum",
            "hyper",
            "hyper_util",
            "tower",
            "reqwest",
            "tokio_rustls",
        ],
    ),
    (
        "work",
        &[
            "rdkafka",
            "axum",
            "hyper",
            "hyper_util",
            "tower",
            "reqwest",
            "tokio_rustls",
        ],
    ),
    (
        "es",
        &[
            "rdkafka",
            "axum",
            "hyper",
            "hyper_util",
            "tower",
            "reqwest",
            "tokio_rustls",
        ],
    ),
    (
        "messaging",
        &["axum", "hyper", "hyper_util", "tower", "reqwest", "tokio_rustls"],
    ),
];

type Module = Vec<String>;

/// One crate's files and the imports between them.
struct Crate {
    /// `src/`, for messages.
    src: PathBuf,
    /// Each module's file.
    files: BTreeMap<Module, PathBuf>,
    /// Each module's code, comments and strings blanked.
    code: BTreeMap<Module, String>,
    /// Who imports whom, with the first line that does.
    edges: BTreeMap<Module, BTreeMap<Module, usize>>,
}

#[test]
fn the_runtime_imports_downward_only() {
    let krate = Crate::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut wrong = Vec::new();
    for (from, to, line) in krate.all_edges() {
        let (Some(low), Some(high)) = (layer(from), layer(to)) else {
            continue;
        };
        if high > low {
            wrong.push(format!(
                "{}:{line} ({}) imports {} ({}), a layer above it",
                krate.file(from),
                LAYERS[low],
                krate.file(to),
                LAYERS[high]
            ));
        }
    }
    for (module, code) in &krate.code {
        if module.is_empty() {
            continue; // lib.rs declares the layers and re-exports their modules
        }
        for (at, path) in paths(code, "crate::") {
            let first = path.first().map(String::as_str).unwrap_or("");
            if !LAYERS.contains(&first) && !ROOT_ALIASES.contains(&first) {
                wrong.push(format!(
                    "{}:{}: `crate::{}` names no layer: write the layer's path (`crate::<layer>::{first}`)",
                    krate.file(module),
                    line_of(code, at),
                    path.join("::")
                ));
            }
        }
        let Some(own) = layer(module) else { continue };
        for (name, forbidden) in FORBIDDEN_CRATES {
            if LAYERS[own] != name {
                continue;
            }
            for other in forbidden.iter() {
                if let Some(at) = uses_crate(code, other) {
                    wrong.push(format!(
                        "{}:{}: the {name} layer uses `{other}`",
                        krate.file(module),
                        line_of(code, at)
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the runtime's layers import downward only:\n{}",
        wrong.join("\n")
    );
    assert!(
        krate.files.keys().any(|m| layer(m) == Some(0)) && krate.all_edges().count() > 50,
        "the runtime's sources were not read"
    );
}

#[test]
fn no_file_of_any_crate_of_the_workspace_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace's root");
    let mut circles = Vec::new();
    let mut crates = 0;
    for src in crate_sources(&root) {
        crates += 1;
        let krate = Crate::read(&src);
        for group in krate.circles() {
            let mut lines: Vec<String> = Vec::new();
            for from in &group {
                for (to, line) in &krate.edges[from] {
                    if group.contains(to) {
                        lines.push(format!(
                            "  {}:{line} imports {}",
                            krate.file(from),
                            krate.file(to)
                        ));
                    }
                }
            }
            let at = krate.src.strip_prefix(&root).unwrap_or(&krate.src);
            circles.push(format!("{}:\n{}", at.display(), lines.join("\n")));
        }
    }
    assert!(
        crates >= 10,
        "only {crates} crates found under {}",
        root.display()
    );
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

/// A service keeps every statement in its `store.rs` (or a `store/`
/// folder beside it): no other file of a service's `src/` calls
/// `sqlx::query*` (CONTRIBUTING.md, "Layout of a service").
#[test]
fn every_statement_of_a_service_is_in_its_store() {
    let services = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../services");
    let mut outside = Vec::new();
    let mut read = 0;
    for src in crate_sources(&services) {
        let krate = Crate::read(&src);
        for (module, code) in &krate.code {
            read += 1;
            if module.first().map(String::as_str) == Some("store") {
                continue;
            }
            let mut from = 0;
            while let Some(found) = code[from..].find("sqlx::query") {
                let at = from + found;
                let file = krate.files[module]
                    .strip_prefix(&services)
                    .unwrap_or(&krate.files[module]);
                outside.push(format!("services/{}:{}", file.display(), line_of(code, at)));
                from = at + 1;
            }
        }
    }
    assert!(
        read > 50,
        "only {read} service files read under {}",
        services.display()
    );
    assert!(
        outside.is_empty(),
        "SQL outside a service's store.rs (move each statement into a function of store.rs):\n{}",
        outside.join("\n")
    );
}

/// The layer of a runtime module: the index in [`LAYERS`] of its first
/// segment (none for `lib.rs`).
fn layer(module: &Module) -> Option<usize> {
    let first = module.first()?;
    LAYERS.iter().position(|l| l == first)
}

impl Crate {
    fn read(src: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut pending = vec![src.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.expect("a directory entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
                if path.is_dir() {
                    if name != "tests" {
                        pending.push(path);
                    }
                } else if name.ends_with(".rs") && name != "tests.rs" {
                    files.insert(module_of(src, &path), path);
                }
            }
        }
        let code: BTreeMap<Module, String> = files
            .iter()
            .map(|(m, p)| {
                (
                    m.clone(),
                    without_tests(&blank(&fs::read_to_string(p).expect("a source file"))),
                )
            })
            .collect();
        let mut edges: BTreeMap<Module, BTreeMap<Module, usize>> = BTreeMap::new();
        for (module, text) in &code {
            // `super` of `a::b`, whether `a/b.rs` or `a/b/mod.rs`, is `a`.
            let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
            let mut found: Vec<(usize, Module)> = paths(text, "crate::");
            found.extend(paths(text, "super::").into_iter().map(|(at, p)| {
                let mut full = parent.clone();
                full.extend(p);
                (at, full)
            }));
            let out = edges.entry(module.clone()).or_default();
            for (at, path) in found {
                let Some(target) = (1..=path.len())
                    .rev()
                    .map(|n| path[..n].to_vec())
                    .find(|t| files.contains_key(t))
                else {
                    continue;
                };
                let ancestor = target.len() < module.len() && module[..target.len()] == target[..];
                if target != *module && !ancestor {
                    let line = line_of(text, at);
                    out.entry(target)
                        .and_modify(|l| *l = (*l).min(line))
                        .or_insert(line);
                }
            }
        }
        Self {
            src: src.to_path_buf(),
            files,
            code,
            edges,
        }
    }

    fn file(&self, module: &Module) -> String {
        let path = &self.files[module];
        path.strip_prefix(self.src.parent().unwrap_or(&self.src))
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn all_edges(&self) -> impl Iterator<Item = (&Module, &Module, usize)> {
        self.edges
            .iter()
            .flat_map(|(from, to)| to.iter().map(move |(to, line)| (from, to, *line)))
    }

    /// The strongly connected groups of two modules or more (Tarjan).
    fn circles(&self) -> Vec<BTreeSet<Module>> {
        struct Walk<'a> {
            edges: &'a BTreeMap<Module, BTreeMap<Module, usize>>,
            index: BTreeMap<&'a Module, usize>,
            low: BTreeMap<&'a Module, usize>,
            stack: Vec<&'a Module>,
            on_stack: BTreeSet<&'a Module>,
            groups: Vec<BTreeSet<Module>>,
        }
        impl<'a> Walk<'a> {
            fn visit(&mut self, v: &'a Module) {
                let n = self.index.len();
                self.index.insert(v, n);
                self.low.insert(v, n);
                self.stack.push(v);
                self.on_stack.insert(v);
                for w in self.edges.get(v).into_iter().flat_map(|e| e.keys()) {
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let low = self.low[v].min(self.low[w]);
                        self.low.insert(v, low);
                    } else if self.on_stack.contains(w) {
                        let low = self.low[v].min(self.index[w]);
                        self.low.insert(v, low);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut group = BTreeSet::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack.remove(w);
                        group.insert(w.clone());
                        if w == v {
                            break;
                        }
                    }
                    if group.len() > 1 {
                        self.groups.push(group);
                    }
                }
            }
        }
        let mut walk = Walk {
            edges: &self.edges,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            groups: Vec::new(),
        };
        for v in self.edges.keys() {
            if !walk.index.contains_key(v) {
                walk.visit(v);
            }
        }
        walk.groups
    }
}

/// Every `src/` of a crate under `root` (a folder with a `Cargo.toml`).
fn crate_sources(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        let mut has_manifest = false;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() && !matches!(name.as_str(), "target" | ".git" | "node_modules") {
                pending.push(path);
            } else if name == "Cargo.toml" {
                has_manifest = true;
            }
        }
        if has_manifest && dir.join("src").is_dir() {
            out.push(dir.join("src"));
        }
    }
    out.sort();
    out
}

/// `a/b/c.rs` is `a::b::c`; `a/b/mod.rs`, `lib.rs` and `main.rs` name their folder.
fn module_of(src: &Path, file: &Path) -> Module {
    let mut module: Module = file
        .strip_prefix(src)
        .expect("a file under src/")
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        module.pop();
    }
    module
}

/// `text` with its comments and the contents of its string and character
/// literals replaced by spaces (lines kept), so that only code is read.
fn blank(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = c.clone();
    let wipe = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in out.iter_mut().take(to.min(c.len())).skip(from) {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            wipe(&mut out, i, end);
            i = end;
        } else if c[i] == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 1;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 1;
                }
                j += 1;
            }
            wipe(&mut out, i, j);
            i = j;
        } else if c[i] == 'r' && (next == Some('"') || next == Some('#')) && !ident(c.get(i.wrapping_sub(1)))
        {
            let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
            if c.get(i + 1 + hashes) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let start = i + 2 + hashes;
            let end = (start..c.len())
                .find(|&j| c[j..].starts_with(&close))
                .map_or(c.len(), |j| j + close.len());
            wipe(&mut out, start, end - close.len().min(end));
            i = end;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            wipe(&mut out, i + 1, j);
            i = j + 1;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '"'), or else a lifetime.
            if next == Some('\\') {
                let end = (i + 2..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                wipe(&mut out, i + 1, end);
                i = end + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                wipe(&mut out, i + 1, i + 2);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// `code` without its `#[cfg(test)] mod name { ... }` blocks (lines kept).
fn without_tests(code: &str) -> String {
    let mut out: Vec<char> = code.chars().collect();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(test)]") {
        let at = from + found;
        let rest = &code[at + "#[cfg(test)]".len()..];
        let head = rest.trim_start();
        let head = head
            .strip_prefix("pub(crate)")
            .or_else(|| head.strip_prefix("pub"))
            .unwrap_or(head);
        let is_block = head
            .trim_start()
            .strip_prefix("mod ")
            .and_then(|r| r.find(['{', ';']).map(|k| r.as_bytes()[k] == b'{'))
            .unwrap_or(false);
        if !is_block {
            from = at + 1;
            continue;
        }
        let open = at + code[at..].find('{').expect("a block");
        let (mut depth, mut end) = (0, open);
        for (k, ch) in code[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = open + k + 1;
                break;
            }
        }
        let (start, stop) = (code[..at].chars().count(), code[..end].chars().count());
        for ch in out.iter_mut().take(stop).skip(start) {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        from = end;
    }
    out.into_iter().collect()
}

/// Every path after `prefix` (`crate::` or `super::`, not itself the end
/// of a longer path), brace trees expanded: its offset and segments.
fn paths(code: &str, prefix: &str) -> Vec<(usize, Module)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(prefix) {
        let at = from + found;
        from = at + prefix.len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        for path in expand(&code[at + prefix.len()..], Vec::new()) {
            out.push((at, path));
        }
    }
    out
}

/// The paths a `use` tree starting at `text` names (`a::{b, c::d}`).
fn expand(text: &str, mut segs: Module) -> Vec<Module> {
    let mut rest = text.trim_start();
    loop {
        if let Some(inner) = rest.strip_prefix('{') {
            let (mut depth, mut piece, mut out) = (0, String::new(), Vec::new());
            for ch in inner.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.extend(expand(&piece, segs.clone()));
                        piece.clear();
                        continue;
                    }
                    _ => {}
                }
                piece.push(ch);
            }
            if !piece.trim().is_empty() {
                out.extend(expand(&piece, segs.clone()));
            }
            return out;
        }
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        if &rest[..len] != "self" {
            segs.push(rest[..len].to_owned());
        }
        match rest[len..].trim_start().strip_prefix("::") {
            Some(more) => rest = more.trim_start(),
            None => break,
        }
    }
    vec![segs]
}

/// Where `code` names the crate `name` (`use name::`, `name::x`), if it does.
fn uses_crate(code: &str, name: &str) -> Option<usize> {
    let needle = format!("{name}::");
    let mut from = 0;
    while let Some(found) = code[from..].find(&needle) {
        let at = from + found;
        let before = code[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            return Some(at);
        }
        from = at + needle.len();
    }
    None
}

fn line_of(code: &str, at: usize) -> usize {
    code[..at].matches('\n').count() + 1
}
