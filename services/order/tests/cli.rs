//! The `order` binary's command line: its settings, as an operator meets them.

use omnisaga_order::config::{Args, SERVICE};
use omnisaga_runtime::{cli, testing::cli as run};

const BIN: &str = env!("CARGO_BIN_EXE_order");

#[test]
fn help_lists_every_setting_with_its_variable_and_exits() {
    run::help_lists_every_setting(BIN, &cli::command::<Args>(&SERVICE));
}

#[test]
fn print_config_shows_the_settings_without_secrets() {
    run::print_config_redacts_the_database_password(
        BIN,
        &[
            "HTTP_ADDR=127.0.0.1:8080  # default",
            "ADMIN_HTTP_ADDR=127.0.0.1:8180  # unset: derived",
            "ORDER_MAX_ITEMS=50  # default",
        ],
    );
}

#[test]
fn print_config_shows_what_was_read_even_when_a_value_is_wrong() {
    let jwks = omnisaga_runtime::testing::auth::signer().jwks();
    let env = [
        ("DATABASE_URL", run::DATABASE_URL),
        ("AUTH_JWKS", jwks.as_str()),
        ("HTTP_RATE_LIMIT_BURST", "0"),
    ];
    let out = run::run(BIN, &["--print-config"], &env);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stdout.contains("HTTP_RATE_LIMIT_BURST=0  # environment"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("HTTP_RATE_LIMIT_BURST at least 1"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_wrong_value_exits_2_naming_the_variable() {
    run::a_wrong_value_is_refused_by_name(BIN, "HTTP_ADDR", "abc");
    run::a_wrong_value_is_refused_by_name(BIN, "ORDER_MAX_ITEMS", "many");
    run::a_wrong_value_is_refused_by_name(BIN, "SHUTDOWN_GRACE_MS", "10");
}

#[test]
fn a_secret_comes_from_its_file_and_an_unreadable_file_is_refused() {
    let file = std::env::temp_dir().join(format!("omnisaga-order-db-{}", std::process::id()));
    std::fs::write(&file, format!("{}\n", run::DATABASE_URL)).unwrap();
    let jwks = omnisaga_runtime::testing::auth::signer().jwks();
    let path = file.display().to_string();
    let env = [("DATABASE_URL_FILE", path.as_str()), ("AUTH_JWKS", jwks.as_str())];
    let out = run::run(BIN, &["--print-config"], &env);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("DATABASE_URL=postgres://svc:***@127.0.0.1:1/nowhere  # file"),
        "{}",
        out.stdout
    );
    // A flag wins over the file.
    let out = run::run(
        BIN,
        &["--print-config", "--database-url=postgres://flag@db/x"],
        &env,
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("DATABASE_URL=postgres://flag@db/x  # command line"),
        "{}",
        out.stdout
    );
    let out = run::run(BIN, &[], &env);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("DATABASE_URL_FILE={path:?} cannot be read")),
        "{}",
        out.stderr
    );
}

#[test]
fn version_prints_the_release() {
    let out = run::run(BIN, &["--version"], &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.trim(), format!("order {}", env!("CARGO_PKG_VERSION")));
}
