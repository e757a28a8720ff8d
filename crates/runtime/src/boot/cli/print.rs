//! `--print-config`: each setting's effective value and where it came
//! from, secrets redacted.

use clap::{ArgMatches, Command};

use crate::boot::config::redact_url;

/// One line per setting, `NAME=value  # source`, in the help's order; an
/// unset one with the value `derived` gives it, if any.
pub(super) fn effective(
    cmd: &Command,
    matches: &ArgMatches,
    from_files: &[String],
    derived: &[(&str, String)],
) -> String {
    let mut out = format!(
        "# {} {}: the effective configuration, secrets redacted\n",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default()
    );
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let name = env.to_string_lossy();
        let id = arg.get_id().as_str();
        let source = super::source(matches, id, &name, from_files);
        let value = matches
            .get_raw(id)
            .and_then(|mut values| values.next())
            .map(|v| redact(&name, &v.to_string_lossy()));
        let derived = derived.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        match (value, derived) {
            (Some(value), _) => out.push_str(&format!("{name}={value}  # {source}\n")),
            (None, Some(value)) => out.push_str(&format!("{name}={value}  # unset: derived\n")),
            (None, None) => out.push_str(&format!("# {name} is unset\n")),
        }
    }
    out
}

/// `value` of `name` as it may be shown: a URL without its password, a
/// secret (a password, token, signing secret or key set) not at all.
pub fn redact(name: &str, value: &str) -> String {
    let secret = ["PASSWORD", "TOKEN", "SECRET", "JWKS", "KEY"]
        .iter()
        .any(|word| name.split('_').any(|part| part == *word));
    if secret && !name.ends_with("_FILE") {
        "<redacted>".into()
    } else if name.contains("WEBHOOK") && name.ends_with("_URL") {
        // A receiver's path or query may be its secret (a chat's hook).
        match value.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.split(['/', '?']).next().unwrap_or_default();
                let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                format!("{scheme}://{host}/<redacted>")
            }
            None => "<redacted>".into(),
        }
    } else if name.ends_with("_URL") {
        redact_url(value)
    } else {
        value.to_owned()
    }
}
