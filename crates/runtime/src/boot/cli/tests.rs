use clap::{FromArgMatches, Parser};

use super::*;

/// A service with nothing of its own.
#[derive(Debug, Parser)]
#[command(version)]
struct Bare {
    #[command(flatten)]
    common: CommonArgs,
}

const BARE: Service = Service {
    name: "bare",
    port: 8089,
    fetch: Fetch::Batched,
};

fn matches(args: &[&str]) -> Result<ArgMatches, String> {
    let cmd = command::<Bare>(&BARE);
    let all = ["bare", "--database-url=postgres://u:p@db/x"].iter().chain(args);
    cmd.clone()
        .try_get_matches_from(all)
        .map_err(|e| explain(&cmd, e).to_string())
}

#[test]
fn a_wrong_value_is_refused_naming_the_variable_and_the_form() {
    let err = matches(&["--http-addr=abc"]).unwrap_err();
    assert!(err.contains("HTTP_ADDR=\"abc\" is invalid"), "{err}");
    assert!(err.contains("expected HOST:PORT"), "{err}");
    let err = matches(&["--outbox-poll-ms=soon"]).unwrap_err();
    assert!(
        err.contains("OUTBOX_POLL_MS=\"soon\" is invalid") && err.contains("MS"),
        "{err}"
    );
    let cmd = command::<Bare>(&BARE);
    let err = explain(&cmd, cmd.clone().try_get_matches_from(["bare"]).unwrap_err()).to_string();
    assert!(err.contains("DATABASE_URL is not set"), "{err}");
}

#[test]
fn the_environment_overrides_the_fetch_defaults_and_bad_ones_are_refused_by_name() {
    let m = matches(&["--kafka-fetch-wait-max-ms=20", "--kafka-fetch-min-bytes=1"]).unwrap();
    let args = Bare::from_arg_matches(&m).unwrap().common;
    assert_eq!(
        (args.kafka_fetch_wait_max_ms, args.kafka_fetch_min_bytes),
        (20, 1)
    );
    let err = matches(&["--kafka-fetch-wait-max-ms=soon"]).unwrap_err();
    assert!(
        err.contains("KAFKA_FETCH_WAIT_MAX_MS=\"soon\" is invalid"),
        "{err}"
    );
    let err = matches(&["--kafka-fetch-min-bytes=-1"]).unwrap_err();
    assert!(err.contains("KAFKA_FETCH_MIN_BYTES"), "{err}");
    let m = matches(&["--kafka-fetch-min-bytes=0", "--auth-jwks={}"]).unwrap();
    let err = Bare::from_arg_matches(&m)
        .unwrap()
        .common
        .into_config(&BARE)
        .unwrap_err();
    assert!(
        err.to_string().contains("KAFKA_FETCH_MIN_BYTES=0 is invalid"),
        "{err}"
    );
}

#[test]
fn the_service_sets_its_own_defaults() {
    let m = matches(&[]).unwrap();
    let config = Bare::from_arg_matches(&m).unwrap().common;
    assert_eq!(config.http_addr, Some(([127, 0, 0, 1], 8089).into()));
    assert_eq!(
        (config.kafka_fetch_wait_max_ms, config.kafka_fetch_min_bytes),
        Fetch::Batched.defaults()
    );
    assert_eq!(config.database_max_connections, 10);
    assert_eq!(config.shutdown_grace_ms, 8000);
}

#[test]
fn print_config_redacts_secrets_and_names_sources() {
    let cmd = command::<Bare>(&BARE);
    let m = matches(&["--kafka-password=hunter2", "--http-addr=0.0.0.0:1"]).unwrap();
    let derived = Bare::from_arg_matches(&m).unwrap().common.derived(&BARE);
    let out = print::effective(&cmd, &m, &["DATABASE_URL".into()], &derived);
    assert!(!out.contains("hunter2") && !out.contains(":p@"), "{out}");
    assert!(
        out.contains("DATABASE_URL=postgres://u:***@db/x  # file"),
        "{out}"
    );
    assert!(out.contains("KAFKA_PASSWORD=<redacted>  # command line"), "{out}");
    assert!(out.contains("HTTP_ADDR=0.0.0.0:1  # command line"), "{out}");
    assert!(out.contains("OUTBOX_POLL_MS=1000  # default"), "{out}");
    assert!(out.contains("# AUTH_JWKS is unset"), "{out}");
    assert!(
        out.contains("ADMIN_HTTP_ADDR=0.0.0.0:101  # unset: derived"),
        "{out}"
    );
    assert!(out.contains("INBOX_RETENTION_HOURS="), "{out}");
}

#[test]
fn secrets_are_never_shown() {
    for (name, value) in [
        ("KAFKA_PASSWORD", "pw"),
        ("WAREHOUSE_TOKEN", "tok"),
        ("PAYMENT_ORDER_TOKEN", "tok"),
        ("NOTIFICATION_WEBHOOK_SECRET", "whsec_x"),
        ("AUTH_JWKS", "{\"keys\":[]}"),
    ] {
        assert_eq!(print::redact(name, value), "<redacted>", "{name}");
    }
    assert_eq!(
        print::redact("DATABASE_MIGRATION_URL", "postgres://o:pw@db/x"),
        "postgres://o:***@db/x"
    );
    assert_eq!(
        print::redact(
            "NOTIFICATION_WEBHOOK_URL",
            "https://u:pw@hooks.example/T0/B0/xyz?k=1"
        ),
        "https://hooks.example/<redacted>"
    );
    assert_eq!(print::redact("TLS_KEY_FILE", "/run/key.pem"), "/run/key.pem");
    assert_eq!(print::redact("KAFKA_BROKERS", "b:9092"), "b:9092");
}

#[test]
fn every_setting_has_a_variable_a_meaning_and_hides_its_value() {
    let cmd = command::<Bare>(&BARE);
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if ["print_config", "help", "version"].contains(&id) {
            continue;
        }
        assert!(arg.get_env().is_some(), "{id} has no variable");
        assert!(arg.get_help().is_some(), "{id} has no meaning");
        assert!(arg.is_hide_env_values_set(), "{id} would show its value");
    }
}

#[test]
fn the_checked_in_configuration_reference_lists_the_common_settings() {
    reference::check("common", &reference::common());
}
