//! Where the stack is: each setting from its flag, else the environment,
//! else `.omnisaga/env` (written by `make run`), else the local default.

use omnisaga_catalog::client::ClientSecurity;

use crate::cli::Global;

/// The local defaults of the services' URLs (`make run`'s ports).
const SERVICE_PORTS: [(&str, u16); 5] = [
    ("order", 8080),
    ("payment", 8081),
    ("warehouse", 8082),
    ("notification", 8083),
    ("analytics", 8084),
];

/// Everything a command may need to reach the stack.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `KAFKA_BROKERS`.
    pub brokers: String,
    /// `KAFKA_TOPIC_PREFIX`.
    pub topic_prefix: String,
    /// `KAFKA_GROUP_SUFFIX`: appended to the services' consumer groups.
    pub group_suffix: String,
    /// `TRACES_URL`: the trace viewer.
    pub traces_url: String,
    /// The bearer token sent to the services: `--token`, `OMNISAGA_TOKEN`,
    /// else the operator's `ADMIN_TOKEN` of `.omnisaga/env`.
    pub token: Option<String>,
    /// The `.omnisaga/env` file's lines, if it is there.
    file: Vec<(String, String)>,
}

impl Settings {
    /// Reads the settings, the flags in `global` first.
    pub fn load(global: &Global) -> Self {
        let text = std::fs::read_to_string(".omnisaga/env").unwrap_or_default();
        let mut settings = Self {
            file: parse_env_file(&text),
            brokers: String::new(),
            topic_prefix: String::new(),
            group_suffix: String::new(),
            traces_url: String::new(),
            token: None,
        };
        settings.brokers = global
            .brokers
            .clone()
            .unwrap_or_else(|| settings.var("KAFKA_BROKERS", "127.0.0.1:9092"));
        settings.topic_prefix = global
            .topic_prefix
            .clone()
            .unwrap_or_else(|| settings.var("KAFKA_TOPIC_PREFIX", omnisaga_catalog::DEFAULT_PREFIX));
        settings.group_suffix = settings.var("KAFKA_GROUP_SUFFIX", "");
        settings.traces_url = settings.var("TRACES_URL", "http://127.0.0.1:16686");
        settings.token = global.token.clone().or_else(|| {
            [
                settings.var("OMNISAGA_TOKEN", ""),
                settings.var("ADMIN_TOKEN", ""),
            ]
            .into_iter()
            .find(|t| !t.is_empty())
        });
        settings
    }

    /// The defaults, read from nowhere.
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: omnisaga_catalog::DEFAULT_PREFIX.into(),
            group_suffix: String::new(),
            traces_url: "http://127.0.0.1:16686".into(),
            token: None,
            file: Vec::new(),
        }
    }

    /// The CAs the services' HTTPS certificates are checked against: the
    /// system's and those of `TLS_CA_FILE` (PEM), from the environment, else
    /// the env file; a file that cannot be read or holds no certificate is
    /// an error naming it.
    pub fn http_trust(&self) -> anyhow::Result<omnisaga_runtime::http_client::Trust> {
        omnisaga_runtime::http_client::Trust::from_vars(|name| Ok(Some(self.var(name, ""))))
    }

    /// These settings with `name` as if the env file said `value`.
    #[cfg(test)]
    pub fn with_file_var(mut self, name: &str, value: &str) -> Self {
        self.file.push((name.to_owned(), value.to_owned()));
        self
    }

    /// How to log in to the broker (`KAFKA_USERNAME`, `KAFKA_PASSWORD` or
    /// `KAFKA_PASSWORD_FILE`, ...: [`ClientSecurity`]), from the environment,
    /// else the env file (`make run` writes the broker admin's there).
    pub fn kafka_security(&self) -> anyhow::Result<ClientSecurity> {
        ClientSecurity::from_vars(|name| self.secret_var(name))
    }

    /// `name`, else the contents of the file `name_FILE` names; `None` when
    /// neither is set, an error naming both when the file cannot be read.
    fn secret_var(&self, name: &str) -> anyhow::Result<Option<String>> {
        let value = self.var(name, "");
        if !value.is_empty() {
            return Ok(Some(value));
        }
        let path = self.var(&format!("{name}_FILE"), "");
        if path.is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{name}_FILE={path:?} cannot be read: {e}"))?;
        Ok(Some(text.trim().to_owned()))
    }

    /// `name` from the environment, else the env file, else `default`.
    fn var(&self, name: &str, default: &str) -> String {
        std::env::var(name)
            .ok()
            .or_else(|| self.file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap_or_else(|| default.to_owned())
    }

    /// The base URL of `service` (`<SERVICE>_URL`).
    pub fn service_url(&self, service: &str) -> String {
        let port = SERVICE_PORTS
            .iter()
            .find(|(name, _)| *name == service)
            .map_or(8080, |(_, port)| *port);
        let url = self.var(
            &format!("{}_URL", service.to_uppercase()),
            &format!("http://127.0.0.1:{port}"),
        );
        url.trim_end_matches('/').to_owned()
    }

    /// The base URL of `service`'s admin listener (`<SERVICE>_ADMIN_URL`,
    /// else its URL with the port + 100, as `ADMIN_HTTP_ADDR` defaults):
    /// where its admin and internal routes are.
    pub fn admin_url(&self, service: &str) -> String {
        let url = self.var(&format!("{}_ADMIN_URL", service.to_uppercase()), "");
        if !url.is_empty() {
            return url.trim_end_matches('/').to_owned();
        }
        admin_of(&self.service_url(service))
    }
}

/// `url` with its port + 100 (`http://h:8080` is `http://h:8180`); a URL
/// without a port is kept.
fn admin_of(url: &str) -> String {
    let (head, tail) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (authority, path) = tail.split_at(tail.find('/').unwrap_or(tail.len()));
    match authority
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
    {
        Some((host, port)) => format!("{head}{host}:{}{path}", port.saturating_add(100)),
        None => url.to_owned(),
    }
}

/// `NAME=value` lines; blank lines, comments and an `export ` are skipped.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_admin_url_is_the_service_url_with_the_port_plus_100() {
        assert_eq!(super::admin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8180");
        assert_eq!(
            super::admin_of("https://order:9000/base"),
            "https://order:9100/base"
        );
        assert_eq!(super::admin_of("http://order"), "http://order");
    }

    use super::*;

    #[test]
    fn the_env_file_gives_names_and_values() {
        let parsed =
            parse_env_file("# stack\nORDER_URL=http://127.0.0.1:9000\n\nexport KAFKA_BROKERS=\"b:1\"\n");
        assert_eq!(
            parsed,
            [
                ("ORDER_URL".to_owned(), "http://127.0.0.1:9000".to_owned()),
                ("KAFKA_BROKERS".to_owned(), "b:1".to_owned())
            ]
        );
    }
}
