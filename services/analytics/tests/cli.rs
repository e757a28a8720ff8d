//! The `analytics` binary's command line: its settings, as an operator meets them.

use omnisaga_analytics::config::{Args, SERVICE};
use omnisaga_runtime::{cli, testing::cli as run};

const BIN: &str = env!("CARGO_BIN_EXE_analytics");

#[test]
fn help_lists_every_setting_with_its_variable_and_exits() {
    run::help_lists_every_setting(BIN, &cli::command::<Args>(&SERVICE));
}

#[test]
fn print_config_shows_the_settings_without_secrets() {
    run::print_config_redacts_the_database_password(
        BIN,
        &[
            "HTTP_ADDR=127.0.0.1:8084  # default",
            "KAFKA_FETCH_WAIT_MAX_MS=100  # default",
        ],
    );
}

#[test]
fn a_wrong_value_exits_2_naming_the_variable() {
    run::a_wrong_value_is_refused_by_name(BIN, "ANALYTICS_READER_ROLE", "Bad Role");
    run::a_wrong_value_is_refused_by_name(BIN, "HTTP_ADDR", "8084");
}
