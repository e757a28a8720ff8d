//! `make lint`'s advisories step (infra/scripts/check-advisories.sh) never
//! passes without having checked: with no RustSec database it fails unless
//! `CARGO_DENY_ADVISORIES=skip` says not to check (and it says so); with
//! one it checks offline; with `=1` it fetches and fails when it cannot.
//! `cargo` is a stand-in here that records how it was called.

use std::{path::PathBuf, process::Command};

struct Run {
    code: i32,
    stderr: String,
    /// The stand-in cargo's arguments, one call a line.
    cargo_calls: String,
}

/// A CARGO_HOME (with a RustSec database if `with_db`) and a stand-in cargo
/// exiting `cargo_exit`; the script run with `how` as CARGO_DENY_ADVISORIES.
fn run(how: Option<&str>, with_db: bool, cargo_exit: i32) -> Run {
    let dir = std::env::temp_dir().join(format!("omnisaga-advisories-{}", uuid::Uuid::new_v4().simple()));
    let (home, bin) = (dir.join("cargo-home"), dir.join("bin"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    if with_db {
        std::fs::create_dir_all(home.join("advisory-dbs/github.com-2f857891b7f43c59/crates")).unwrap();
    }
    let calls = dir.join("calls");
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/usr/bin/env bash\necho \"$*\" >>{}\nexit {cargo_exit}\n",
            calls.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "infra",
        "scripts",
        "check-advisories.sh",
    ]
    .iter()
    .collect();
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .env("CARGO_HOME", &home)
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .env_remove("CARGO_DENY_ADVISORIES");
    if let Some(how) = how {
        cmd.env("CARGO_DENY_ADVISORIES", how);
    }
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        cargo_calls: std::fs::read_to_string(&calls).unwrap_or_default(),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    run
}

#[test]
fn without_a_database_the_advisories_step_fails_unless_told_to_skip_and_says_they_were_not_checked() {
    let r = run(None, false, 0);
    assert_ne!(r.code, 0, "passed without checking: {}", r.stderr);
    assert!(r.stderr.contains("advisories NOT checked"), "{}", r.stderr);
    assert!(r.stderr.contains("CARGO_DENY_ADVISORIES=1"), "{}", r.stderr);
    assert!(r.cargo_calls.is_empty(), "{}", r.cargo_calls);

    let skipped = run(Some("skip"), false, 0);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
    assert!(
        skipped.stderr.contains("advisories NOT checked"),
        "{}",
        skipped.stderr
    );

    let unknown = run(Some("yes"), false, 0);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("expected 1"), "{}", unknown.stderr);
}

#[test]
fn with_a_database_the_advisories_are_checked_offline_and_a_failed_fetch_fails() {
    let offline = run(None, true, 0);
    assert_eq!(offline.code, 0, "{}", offline.stderr);
    assert_eq!(offline.cargo_calls.trim(), "deny --offline check advisories");
    let found = run(None, true, 1);
    assert_ne!(found.code, 0, "an advisory fails the step");

    let fetched = run(Some("1"), false, 0);
    assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    assert_eq!(fetched.cargo_calls.trim(), "deny check advisories");
    let unreachable = run(Some("1"), false, 1);
    assert_ne!(unreachable.code, 0);
    assert!(
        unreachable.stderr.contains("could not be fetched"),
        "{}",
        unreachable.stderr
    );
}
