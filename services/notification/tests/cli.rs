//! The `notification` binary's command line: its settings, as an operator meets them.

use omnisaga_notification::config::{Args, SERVICE};
use omnisaga_runtime::{cli, testing::cli as run};

const BIN: &str = env!("CARGO_BIN_EXE_notification");

#[test]
fn help_lists_every_setting_with_its_variable_and_exits() {
    run::help_lists_every_setting(BIN, &cli::command::<Args>(&SERVICE));
}

#[test]
fn print_config_shows_the_settings_without_secrets() {
    run::print_config_redacts_the_database_password(
        BIN,
        &[
            "HTTP_ADDR=127.0.0.1:8083  # default",
            "KAFKA_FETCH_MIN_BYTES=1000000  # default",
        ],
    );
}

#[test]
fn a_wrong_value_exits_2_naming_the_variable() {
    run::a_wrong_value_is_refused_by_name(BIN, "NOTIFICATION_MAX_ATTEMPTS", "x");
    run::a_wrong_value_is_refused_by_name(BIN, "NOTIFICATION_WEBHOOK_URL", "http://hooks.example/x");
}
