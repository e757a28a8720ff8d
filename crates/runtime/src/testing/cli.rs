//! A service binary run as an operator runs it: `--help`, `--print-config`
//! and a wrong setting, in an environment of the test's own (nothing but
//! `PATH` and what the test sets), with a deadline.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// How a run ended.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` when killed at the deadline.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A database URL with a password, on a port nothing listens on.
pub const DATABASE_URL: &str = "postgres://svc:s3cret-pw@127.0.0.1:1/nowhere";

/// Runs `bin` with `args` and only the variables `env` (and `PATH`); kills
/// it after 20 s (a service that started instead of answering).
pub fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = std::env::temp_dir();
    let stem = format!(
        "omnisaga-cli-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let (out, err) = (dir.join(format!("{stem}.out")), dir.join(format!("{stem}.err")));
    let mut child = Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // Nothing may reach these: a run that tries fails fast.
        .env("KAFKA_BROKERS", "127.0.0.1:1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("a temporary file"))
        .stderr(std::fs::File::create(&err).expect("a temporary file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |p: &std::path::Path| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        text
    };
    Run {
        code,
        stdout: read(&out),
        stderr: read(&err),
    }
}

/// The variables every setting of `cmd` reads.
pub fn variables(cmd: &clap::Command) -> Vec<String> {
    cmd.get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// `bin --help` lists every variable of `cmd` and exits 0 at once, with no
/// setting at all (no database, no JWKS).
pub fn help_lists_every_setting(bin: &str, cmd: &clap::Command) {
    let run = run(bin, &["--help"], &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    for name in variables(cmd)
        .iter()
        .map(String::as_str)
        .chain(["LOG_FORMAT", "NAME_FILE"])
    {
        assert!(
            run.stdout.contains(name),
            "--help does not list {name}:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("[default: "), "{}", run.stdout);
    assert!(!run.stderr.contains("starting"), "{run:?}");
}

/// `bin --print-config` shows the effective settings, the database URL
/// without its password, and exits 0 without connecting to anything.
pub fn print_config_redacts_the_database_password(bin: &str, expected: &[&str]) {
    let jwks = super::auth::signer().jwks();
    let env = [("DATABASE_URL", DATABASE_URL), ("AUTH_JWKS", jwks.as_str())];
    let run = run(bin, &["--print-config"], &env);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        !run.stdout.contains("s3cret-pw") && !run.stderr.contains("s3cret-pw"),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains("\"keys\""),
        "the JWKS is shown: {}",
        run.stdout
    );
    for line in [
        "DATABASE_URL=postgres://svc:***@127.0.0.1:1/nowhere  # environment",
        "KAFKA_BROKERS=127.0.0.1:1  # environment",
        "AUTH_JWKS=<redacted>  # environment",
    ]
    .iter()
    .chain(expected)
    {
        assert!(run.stdout.contains(line), "no {line:?} in:\n{}", run.stdout);
    }
}

/// `bin` with `name=value` exits 2 at once, naming the variable, without a
/// backtrace.
pub fn a_wrong_value_is_refused_by_name(bin: &str, name: &str, value: &str) {
    let jwks = super::auth::signer().jwks();
    let env = [
        ("DATABASE_URL", DATABASE_URL),
        ("AUTH_JWKS", jwks.as_str()),
        ("RUST_BACKTRACE", "1"),
        (name, value),
    ];
    let run = run(bin, &[], &env);
    assert_eq!(run.code, Some(2), "{name}={value}: {run:?}");
    assert!(run.stderr.contains(name), "{name}={value}: {}", run.stderr);
    assert!(!run.stderr.contains("backtrace"), "{}", run.stderr);
    assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
}
