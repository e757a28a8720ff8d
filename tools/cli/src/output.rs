//! How results reach the terminal: aligned tables on stdout, progress on
//! stderr only when a person watches it.

use std::{borrow::Cow, io::IsTerminal, time::Duration};

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// A spinner saying `what` is being done, drawn on stderr; hidden when
/// stderr is no terminal or the output is JSON.
pub fn spinner(what: impl Into<Cow<'static, str>>, json: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, draw_target(json));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A bar of `total` steps saying `what` is being done, like [`spinner`].
pub fn bar(total: u64, what: impl Into<Cow<'static, str>>, json: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), draw_target(json));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

fn draw_target(json: bool) -> ProgressDrawTarget {
    if json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// A table with `header`, borders only, its columns as wide as their content.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    table
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A JSON string field as text, `-` when absent.
pub fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}
