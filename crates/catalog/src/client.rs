//! How an omnisaga Kafka client reaches the broker: in plain text, or as a
//! SASL/SCRAM user, over TLS or not. Every service, the CLI and the tests read
//! the same variables:
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `KAFKA_SECURITY_PROTOCOL` | `sasl_plaintext` when `KAFKA_USERNAME` is set, else `plaintext` | `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` |
//! | `KAFKA_SASL_MECHANISM` | `SCRAM-SHA-512` | `SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN` |
//! | `KAFKA_USERNAME` | none | the SASL user (`<prefix><service>` as `omnisaga kafka provision` makes them) |
//! | `KAFKA_PASSWORD` (or `KAFKA_PASSWORD_FILE`) | none | its password |
//! | `KAFKA_SSL_CA_FILE` | the system's | PEM file of the CA that signed the broker's certificate (`ssl`, `sasl_ssl`) |

use anyhow::{bail, ensure, Result};

/// The protocols librdkafka speaks, as `security.protocol` spells them.
const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
/// The SASL mechanisms the broker is set up for (SCRAM) or may be (PLAIN).
const MECHANISMS: [&str; 3] = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];

/// A Kafka client's security settings. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecurity {
    /// `security.protocol`: one of `plaintext`, `ssl`, `sasl_plaintext`, `sasl_ssl`.
    pub protocol: String,
    /// `sasl.mechanisms` when the protocol is a SASL one.
    pub mechanism: String,
    /// The SASL user and password.
    pub credentials: Option<(String, String)>,
    /// The CA to check the broker's certificate with, instead of the system's.
    pub ca_file: Option<String>,
}

impl Default for ClientSecurity {
    fn default() -> Self {
        Self {
            protocol: "plaintext".into(),
            mechanism: MECHANISMS[0].into(),
            credentials: None,
            ca_file: None,
        }
    }
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("protocol", &self.protocol)
            .field("mechanism", &self.mechanism)
            .field("username", &self.credentials.as_ref().map(|(user, _)| user))
            .field("password", &self.credentials.as_ref().map(|_| "[redacted]"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl ClientSecurity {
    /// SCRAM-SHA-512 over plain TCP as `username`: the local broker's setting.
    pub fn scram(username: &str, password: &str) -> Self {
        Self {
            protocol: "sasl_plaintext".into(),
            credentials: Some((username.into(), password.into())),
            ..Self::default()
        }
    }

    /// SCRAM-SHA-512 as `username` with the password in `file` (its
    /// surrounding whitespace dropped).
    pub fn scram_from_file(username: &str, file: impl AsRef<std::path::Path>) -> Result<Self> {
        let file = file.as_ref();
        let password = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("Failed to read {}: {e}", file.display()))?;
        ensure!(!password.trim().is_empty(), "{} is empty", file.display());
        Ok(Self::scram(username, password.trim()))
    }

    /// The broker `make test` started, as its admin: `OMNISAGA_TEST_KAFKA_USERNAME`
    /// with the password in `OMNISAGA_TEST_KAFKA_PASSWORD_FILE`; plain text
    /// when no user is set.
    pub fn test_broker_admin() -> Result<Self> {
        let Ok(user) = std::env::var("OMNISAGA_TEST_KAFKA_USERNAME") else {
            return Ok(Self::default());
        };
        let Ok(file) = std::env::var("OMNISAGA_TEST_KAFKA_PASSWORD_FILE") else {
            bail!("OMNISAGA_TEST_KAFKA_USERNAME is set without OMNISAGA_TEST_KAFKA_PASSWORD_FILE");
        };
        Self::scram_from_file(&user, file)
    }

    /// Reads the settings through `var` (a variable's value, or its
    /// `_FILE`'s contents, as the caller reads them), checking they make sense
    /// together: a SASL protocol needs a user and a password, a user needs a
    /// SASL protocol.
    pub fn from_vars(var: impl Fn(&str) -> Result<Option<String>>) -> Result<Self> {
        let username = var("KAFKA_USERNAME")?.filter(|u| !u.is_empty());
        let password = var("KAFKA_PASSWORD")?.filter(|p| !p.is_empty());
        let protocol = var("KAFKA_SECURITY_PROTOCOL")?
            .filter(|p| !p.is_empty())
            .map(|p| p.to_ascii_lowercase())
            .unwrap_or_else(|| {
                if username.is_some() {
                    "sasl_plaintext"
                } else {
                    "plaintext"
                }
                .into()
            });
        ensure!(
            PROTOCOLS.contains(&protocol.as_str()),
            "KAFKA_SECURITY_PROTOCOL={protocol} is none of {}",
            PROTOCOLS.join(", ")
        );
        let mechanism = var("KAFKA_SASL_MECHANISM")?
            .filter(|m| !m.is_empty())
            .map(|m| m.to_ascii_uppercase())
            .unwrap_or_else(|| MECHANISMS[0].into());
        ensure!(
            MECHANISMS.contains(&mechanism.as_str()),
            "KAFKA_SASL_MECHANISM={mechanism} is none of {}",
            MECHANISMS.join(", ")
        );
        let sasl = protocol.starts_with("sasl_");
        let credentials = match (username, password) {
            (Some(user), Some(password)) if sasl => Some((user, password)),
            (Some(_), None) if sasl => {
                bail!("KAFKA_USERNAME is set without KAFKA_PASSWORD (or KAFKA_PASSWORD_FILE)")
            }
            (None, _) if sasl => {
                bail!("KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_USERNAME and KAFKA_PASSWORD")
            }
            (Some(_), _) => {
                bail!("KAFKA_USERNAME is set but KAFKA_SECURITY_PROTOCOL={protocol} sends no user")
            }
            (None, _) => None,
        };
        Ok(Self {
            protocol,
            mechanism,
            credentials,
            ca_file: var("KAFKA_SSL_CA_FILE")?.filter(|f| !f.is_empty()),
        })
    }

    /// The SASL user, if any.
    pub fn username(&self) -> Option<&str> {
        self.credentials.as_ref().map(|(user, _)| user.as_str())
    }

    /// librdkafka's settings for these, to add to a client's configuration.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = vec![("security.protocol", self.protocol.clone())];
        if let Some((user, password)) = &self.credentials {
            settings.push(("sasl.mechanisms", self.mechanism.clone()));
            settings.push(("sasl.username", user.clone()));
            settings.push(("sasl.password", password.clone()));
        }
        if let Some(ca) = &self.ca_file {
            settings.push(("ssl.ca.location", ca.clone()));
        }
        settings
    }

    /// The variables that give a child process these settings.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("KAFKA_SECURITY_PROTOCOL", self.protocol.clone()),
            ("KAFKA_SASL_MECHANISM", self.mechanism.clone()),
        ];
        if let Some((user, password)) = &self.credentials {
            env.push(("KAFKA_USERNAME", user.clone()));
            env.push(("KAFKA_PASSWORD", password.clone()));
        }
        if let Some(ca) = &self.ca_file {
            env.push(("KAFKA_SSL_CA_FILE", ca.clone()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<ClientSecurity> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        ClientSecurity::from_vars(|name| Ok(vars.get(name).cloned()))
    }

    #[test]
    fn nothing_set_is_plain_text() {
        let security = read(&[]).unwrap();
        assert_eq!(security, ClientSecurity::default());
        assert_eq!(
            security.settings(),
            vec![("security.protocol", "plaintext".to_owned())]
        );
    }

    #[test]
    fn a_user_means_scram_over_plain_tcp() {
        let security = read(&[
            ("KAFKA_USERNAME", "omnisaga.payment"),
            ("KAFKA_PASSWORD", "s3cret"),
        ])
        .unwrap();
        assert_eq!(security, ClientSecurity::scram("omnisaga.payment", "s3cret"));
        let settings: HashMap<_, _> = security.settings().into_iter().collect();
        assert_eq!(settings["security.protocol"], "sasl_plaintext");
        assert_eq!(settings["sasl.mechanisms"], "SCRAM-SHA-512");
        assert_eq!(settings["sasl.username"], "omnisaga.payment");
        assert_eq!(settings["sasl.password"], "s3cret");
        // What a child process is given reads back the same.
        let env: HashMap<String, String> = security.env().into_iter().map(|(k, v)| (k.into(), v)).collect();
        assert_eq!(
            ClientSecurity::from_vars(|n| Ok(env.get(n).cloned())).unwrap(),
            security
        );
    }

    #[test]
    fn tls_takes_its_ca() {
        let security = read(&[
            ("KAFKA_SECURITY_PROTOCOL", "SSL"),
            ("KAFKA_SSL_CA_FILE", "/ca.pem"),
        ])
        .unwrap();
        assert!(security
            .settings()
            .contains(&("ssl.ca.location", "/ca.pem".to_owned())));
        assert_eq!(security.protocol, "ssl");
    }

    #[test]
    fn settings_that_contradict_each_other_are_refused() {
        for (vars, says) in [
            (
                vec![("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")],
                "needs KAFKA_USERNAME",
            ),
            (vec![("KAFKA_USERNAME", "u")], "without KAFKA_PASSWORD"),
            (
                vec![
                    ("KAFKA_SECURITY_PROTOCOL", "ssl"),
                    ("KAFKA_USERNAME", "u"),
                    ("KAFKA_PASSWORD", "p"),
                ],
                "sends no user",
            ),
            (vec![("KAFKA_SECURITY_PROTOCOL", "tls")], "none of"),
            (
                vec![
                    ("KAFKA_USERNAME", "u"),
                    ("KAFKA_PASSWORD", "p"),
                    ("KAFKA_SASL_MECHANISM", "GSSAPI"),
                ],
                "none of",
            ),
        ] {
            let err = read(&vars).unwrap_err().to_string();
            assert!(err.contains(says), "{vars:?}: {err}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let shown = format!(
            "{:?}",
            ClientSecurity::scram("omnisaga.order", "hunter2-very-secret")
        );
        assert!(
            shown.contains("omnisaga.order") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
