//! What the docs may name: the repository's files and folders, and the
//! identifiers its Rust and SQL code uses.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

/// Folders never indexed: build output, the stack's data, Git's.
const SKIPPED: [&str; 4] = ["target", ".git", ".omnisaga", "node_modules"];

pub struct Repo {
    pub root: PathBuf,
    /// Every file and folder, relative, `/`-separated.
    pub paths: HashSet<String>,
    /// The top-level folders a path in the docs may start with.
    pub top: HashSet<String>,
    /// Every identifier in Rust code (comments left out) and SQL.
    pub words: HashSet<String>,
    /// Identifiers called or defined as functions: followed by `(` or `<`,
    /// or after `fn`.
    pub functions: HashSet<String>,
    /// Crates from outside the workspace (`std`, `tokio`, ...): a path
    /// starting with one is not the workspace's to check.
    pub external: HashSet<String>,
}

impl Repo {
    pub fn load(root: &Path) -> Repo {
        let mut repo = Repo {
            root: root.to_owned(),
            paths: HashSet::new(),
            top: HashSet::new(),
            words: HashSet::new(),
            functions: HashSet::new(),
            external: ["std", "core", "alloc"].map(String::from).into(),
        };
        repo.walk(root);
        repo.top = fs::read_dir(root)
            .expect("read the repository root")
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && !SKIPPED.contains(&n.as_str()))
            .collect();
        let lock = fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
        for name in lock.lines().filter_map(|l| l.strip_prefix("name = \"")) {
            let name = name.trim_end_matches('"').replace('-', "_");
            if !name.starts_with("omnisaga") {
                repo.external.insert(name);
            }
        }
        repo
    }

    fn walk(&mut self, dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if SKIPPED.contains(&name.as_str()) {
                continue;
            }
            let relative = path
                .strip_prefix(&self.root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            self.paths.insert(relative);
            if path.is_dir() {
                self.walk(&path);
            } else if (name.ends_with(".rs") || name.ends_with(".sql")) && !self.is_checker(&path) {
                if let Ok(text) = fs::read_to_string(&path) {
                    self.read_code(&text, name.ends_with(".sql"));
                }
            }
        }
    }

    fn read_code(&mut self, text: &str, sql: bool) {
        for line in text.lines() {
            let code = if sql {
                line.split("--").next()
            } else {
                code_part(line)
            };
            let Some(code) = code else { continue };
            let chars: Vec<char> = code.chars().collect();
            let mut i = 0;
            let mut previous = String::new();
            while i < chars.len() {
                if !is_ident_char(chars[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace() || sql);
                if matches!(next, Some('(') | Some('<')) || previous == "fn" {
                    self.functions.insert(word.clone());
                }
                self.words.insert(word.clone());
                previous = word;
            }
        }
    }

    /// The docs check itself, whose tests plant names that exist nowhere.
    fn is_checker(&self, path: &Path) -> bool {
        let relative = path.strip_prefix(&self.root).unwrap_or(path);
        relative.starts_with("e2e/tests/docs") || relative == Path::new("e2e/tests/docs.rs")
    }

    /// Whether a path, relative to the root, exists. `<name>` and `*` match
    /// any part of one segment.
    pub fn exists(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        if !path.contains('<') && !path.contains('*') {
            return self.paths.contains(path);
        }
        let pattern: Vec<&str> = path.split('/').collect();
        self.paths.iter().any(|p| {
            let segments: Vec<&str> = p.split('/').collect();
            segments.len() == pattern.len() && segments.iter().zip(&pattern).all(|(s, pat)| glob(pat, s))
        })
    }

    /// Whether some file's path ends with these segments (`domain/tests.rs`).
    pub fn ends_with(&self, tail: &str) -> bool {
        let pattern: Vec<&str> = tail.trim_end_matches('/').split('/').collect();
        self.paths.iter().any(|p| {
            let segments: Vec<&str> = p.split('/').collect();
            segments.len() >= pattern.len()
                && segments[segments.len() - pattern.len()..]
                    .iter()
                    .zip(&pattern)
                    .all(|(s, pat)| glob(pat, s))
        })
    }
}

/// A line of Rust without its comment (a `//` outside a string literal).
fn code_part(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") || trimmed.starts_with("/*") || trimmed.starts_with('*') {
        return None;
    }
    let mut in_string = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_string = !in_string,
            b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => return Some(&line[..i]),
            _ => {}
        }
    }
    Some(line)
}

pub fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `pattern` against one path segment: `<...>` and `*` match any run of
/// characters, the rest literally.
fn glob(pattern: &str, segment: &str) -> bool {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => parts.push(std::mem::take(&mut literal)),
            '<' => {
                parts.push(std::mem::take(&mut literal));
                for c in chars.by_ref() {
                    if c == '>' {
                        break;
                    }
                }
            }
            c => literal.push(c),
        }
    }
    parts.push(literal);
    // parts[0] is a prefix, the last a suffix, the others in order between.
    let (first, last) = (&parts[0], &parts[parts.len() - 1]);
    if parts.len() == 1 {
        return segment == first;
    }
    if !segment.starts_with(first.as_str())
        || segment.len() < first.len() + last.len()
        || !segment.ends_with(last.as_str())
    {
        return false;
    }
    let mut rest = &segment[first.len()..segment.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle.as_str()) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}
