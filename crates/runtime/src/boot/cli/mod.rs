//! A service's command line: its settings as clap arguments, each read
//! from an environment variable (or a flag of the same name), with
//! `--help`, `--version` and `--print-config`.
//!
//! The settings every service has are [`CommonArgs`]; each service flattens
//! them into its own `Args` next to its own settings and calls [`load`].
//! A value may also come from a file: `NAME_FILE=/path` stands for `NAME`
//! (for secrets such as a database URL with a password); a file that cannot
//! be read is an error naming both, never an unset variable.
//!
//! A wrong value stops the service before it touches anything, with exit
//! code 2 and a message naming the variable and the form it expects.
//! The configuration reference (docs/configuration.md) is generated from
//! these definitions ([`reference`]).

mod common;
mod convert;
mod print;
pub mod reference;

use std::ffi::OsString;

use clap::{error::ErrorKind, parser::ValueSource, ArgMatches, Command};

pub use common::CommonArgs;

use crate::messaging::kafka::Fetch;

/// What differs between the services in their common settings.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The service's name (`order`...).
    pub name: &'static str,
    /// Its usual HTTP port (the admin listener's is 100 above).
    pub port: u16,
    /// How its consumers fetch, which sets the fetch defaults.
    pub fetch: Fetch,
}

/// A service's arguments: its [`CommonArgs`] flattened in, and how they
/// become its configuration.
pub trait ServiceArgs: clap::Parser {
    type Config;
    /// The common settings.
    fn common(&self) -> &CommonArgs;
    /// The configuration, checked; an error names the variable.
    fn into_config(self, service: &Service) -> anyhow::Result<Self::Config>;
}

/// Settings read by logging and tracing, before the command line: the
/// environment only. `(variable, default, meaning)`.
pub const ENVIRONMENT_ONLY: [(&str, &str, &str); 6] = [
    ("LOG_FORMAT", "`json`", "`json` or `pretty`"),
    ("RUST_LOG", "`info,sqlx=warn,rdkafka=warn`", "log filter (tracing's `EnvFilter`)"),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "unset: no export",
        "OTLP/gRPC endpoint for spans (`make run` sets the trace viewer's); `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` likewise",
    ),
    (
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "unset: the system's CAs",
        "PEM CA the `https://` collector's certificate is checked against",
    ),
    (
        "OTEL_SERVICE_NAME",
        "the service's name",
        "the traces' service name; `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` and the other standard OpenTelemetry variables keep the SDK's defaults (`make run` and the test stacks size `OTEL_BSP_*` for 240 orders/s: docs/observability.md)",
    ),
    (
        "FAILPOINTS",
        "unset",
        "tests only: failpoints to arm, in a build with the `failpoints` feature",
    ),
];

/// The clap command of `A` for `service`: its defaults, each argument
/// showing its variable but never the variable's value (a secret).
pub fn command<A: clap::CommandFactory>(service: &Service) -> Command {
    let (wait, min_bytes) = service.fetch.defaults();
    let env_only: String = ENVIRONMENT_ONLY
        .iter()
        .map(|(name, default, meaning)| format!("  {name}\n          {meaning} [default: {default}]\n"))
        .collect();
    A::command()
        .name(service.name)
        // One pass, which keeps the arguments in their order.
        .mut_args(|a| {
            let a = match a.get_id().as_str() {
                "http_addr" => a.default_value(format!("127.0.0.1:{}", service.port)),
                "kafka_fetch_wait_max_ms" => a.default_value(wait.to_string()),
                "kafka_fetch_min_bytes" => a.default_value(min_bytes.to_string()),
                _ => a,
            };
            // The service's own settings, under its name.
            let own = a.get_env().is_some() && a.get_help_heading().is_none();
            let a = a.hide_env_values(true);
            if own {
                a.help_heading(format!("{} service", service.name))
            } else {
                a
            }
        })
        .after_long_help(format!(
            "Every setting may come from a file instead: NAME_FILE=/path stands for NAME.\n\n\
             Read from the environment only, by logging and tracing:\n{env_only}"
        ))
}

/// The configuration of the service `A` from the environment (and the
/// command line): prints the help, the version or the configuration and
/// exits 0 when asked to; exits 2 with a message naming the variable when a
/// value is wrong.
pub fn load<A: ServiceArgs>(service: &Service) -> A::Config {
    let cmd = command::<A>(service);
    let (args, from_files) = match with_files(&cmd, std::env::args_os().collect()) {
        Ok(found) => found,
        Err(e) => fail(&cmd, ErrorKind::Io, format!("{e:#}")),
    };
    let matches = cmd
        .clone()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| explain(&cmd, e).exit());
    let parsed = A::from_arg_matches(&matches).unwrap_or_else(|e| explain(&cmd, e).exit());
    let print = parsed.common().print_config;
    if print {
        // Shown even when a value is wrong: what was read is the question then.
        let derived = parsed.common().derived(service);
        print!("{}", print::effective(&cmd, &matches, &from_files, &derived));
    }
    let config = parsed
        .into_config(service)
        .unwrap_or_else(|e| fail(&cmd, ErrorKind::ValueValidation, format!("{e:#}")));
    if print {
        std::process::exit(0);
    }
    config
}

/// `args` with `--flag=value` for each setting neither its variable nor
/// its flag gives whose `NAME_FILE` names a file (its contents, trimmed),
/// and those settings' names.
fn with_files(cmd: &Command, mut args: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, Vec<String>)> {
    let mut names = Vec::new();
    for arg in cmd.get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let name = env.to_string_lossy();
        let flag = format!("--{long}");
        let given = args.iter().any(|a| {
            let a = a.to_string_lossy();
            a == flag || a.starts_with(&format!("{flag}="))
        });
        // The variable, or the flag, wins over the file.
        if given || std::env::var_os(env).is_some() {
            continue;
        }
        if let Some(value) = crate::base::env::var(&name)? {
            args.push(format!("--{long}={value}").into());
            names.push(name.into_owned());
        }
    }
    Ok((args, names))
}

/// Stops with `message` as clap's error of `kind` (exit code 2).
fn fail(cmd: &Command, kind: ErrorKind, message: String) -> ! {
    cmd.clone().error(kind, message).exit()
}

/// Clap's error, said with the variable's name when it is about a setting.
fn explain(cmd: &Command, e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.first().cloned(),
        _ => None,
    };
    let Some(arg) = arg.and_then(|flag| setting(cmd, &flag)) else {
        return e;
    };
    let (name, form) = arg;
    let message = match e.kind() {
        ErrorKind::MissingRequiredArgument => format!("{name} is not set (nor {name}_FILE)"),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue => {
            let value = match e.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(v)) => format!("{v:?}"),
                _ => "the value".into(),
            };
            let why = std::error::Error::source(&e)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            format!("{name}={value} is invalid{why}: expected {form}")
        }
        _ => return e,
    };
    cmd.clone().error(e.kind(), message)
}

/// The variable and value form of the setting clap calls `flag`
/// (`--http-addr <HOST:PORT>`).
fn setting(cmd: &Command, flag: &str) -> Option<(String, String)> {
    let long = flag.strip_prefix("--")?.split([' ', '=']).next()?;
    let arg = cmd.get_arguments().find(|a| a.get_long() == Some(long))?;
    let name = arg.get_env()?.to_string_lossy().into_owned();
    let form = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| "a value".into());
    Some((name, form))
}

/// Where a setting's value came from, for `--print-config`.
fn source(matches: &ArgMatches, id: &str, name: &str, from_files: &[String]) -> &'static str {
    if from_files.iter().any(|f| f == name) {
        return "file";
    }
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => "environment",
        Some(ValueSource::CommandLine) => "command line",
        Some(ValueSource::DefaultValue) => "default",
        _ => "unset",
    }
}

#[cfg(test)]
mod tests;
