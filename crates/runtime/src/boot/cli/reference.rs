//! The configuration reference, docs/configuration.md, generated from the
//! clap definitions: one section for the settings every service has
//! ([`common`]), one per service for its own ([`service`]). Each service's
//! test compares its section with the file ([`check`]); `make config-docs`
//! writes them (`OMNISAGA_WRITE_CONFIG=1`).

use clap::{Arg, Args, Command};

use super::{CommonArgs, Service, ENVIRONMENT_ONLY};

/// The settings every service has, and those only the environment gives.
pub fn common() -> String {
    let cmd = CommonArgs::augment_args(Command::new("common"));
    let mut out = table(cmd.get_arguments());
    out.push_str("\nRead from the environment only, by logging and tracing (before the settings above):\n\n");
    out.push_str("| variable | default | meaning |\n|---|---|---|\n");
    for (name, default, meaning) in ENVIRONMENT_ONLY {
        out.push_str(&format!("| `{name}` | {default} | {meaning} |\n"));
    }
    out
}

/// The settings of `service` (whose arguments are `A`) that are its own,
/// and the common ones whose default it changes.
pub fn service<A: clap::CommandFactory>(service: &Service) -> String {
    let common = CommonArgs::augment_args(Command::new("common"));
    let cmd = super::command::<A>(service);
    let own =
        cmd.get_arguments().filter(
            |arg| match common.get_arguments().find(|c| c.get_id() == arg.get_id()) {
                None => true,
                Some(c) => c.get_default_values() != arg.get_default_values(),
            },
        );
    table(own)
}

/// A markdown table of the settings among `args`.
fn table<'a>(args: impl Iterator<Item = &'a Arg>) -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for arg in args {
        let Some(env) = arg.get_env() else { continue };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .replace('\n', " ");
        let (meaning, unset) = match help.split_once(" Unset: ") {
            Some((meaning, unset)) => (meaning.to_owned(), Some(unset.trim_end_matches('.').to_owned())),
            None => (help.clone(), None),
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| format!("`{}`", d.to_string_lossy()))
            .collect();
        let default = match (defaults.is_empty(), unset) {
            (false, _) => defaults.join(", "),
            (true, Some(unset)) => format!("unset: {unset}"),
            (true, None) => "unset".into(),
        };
        let required = if arg.is_required_set() { "(required)" } else { "" };
        out.push_str(&format!(
            "| `{}` | {}{} | {} |\n",
            env.to_string_lossy(),
            required,
            if required.is_empty() {
                default
            } else {
                String::new()
            },
            meaning.trim_end_matches('.').replace('|', "\\|"),
        ));
    }
    out
}

/// Where the reference is.
pub fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md")
}

/// Compares `text` with the section `name` of docs/configuration.md (between
/// `<!-- begin NAME -->` and `<!-- end NAME -->`); with
/// `OMNISAGA_WRITE_CONFIG=1`, writes it there instead. A panic says which.
pub fn check(name: &str, text: &str) {
    let path = path();
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (begin, end) = (format!("<!-- begin {name} -->\n"), format!("<!-- end {name} -->"));
    let (Some(a), Some(b)) = (doc.find(&begin), doc.find(&end)) else {
        panic!("{} has no section `{begin}`...`{end}`", path.display());
    };
    let current = &doc[a + begin.len()..b];
    if current == text {
        return;
    }
    if std::env::var_os("OMNISAGA_WRITE_CONFIG").is_some() {
        let updated = format!("{}{text}{}", &doc[..a + begin.len()], &doc[b..]);
        std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let (file, code) = (variables(current), variables(text));
    let missing: Vec<_> = code.iter().filter(|v| !file.contains(v)).collect();
    let extra: Vec<_> = file.iter().filter(|v| !code.contains(v)).collect();
    panic!(
        "docs/configuration.md's section `{name}` differs from the settings the code defines \
         (missing: {missing:?}; not settings: {extra:?}): run `make config-docs` and commit it.\n\
         --- file\n{current}\n--- code\n{text}"
    );
}

/// The variables a table names, in its first column.
fn variables(table: &str) -> Vec<&str> {
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .collect()
}
