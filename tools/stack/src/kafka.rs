//! The stack's broker as a client reaches it: its address and the admin's
//! login, and the users and ACLs the stack's services log in with
//! (`omnisaga kafka provision`, as `make run` and a deployment run it).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use omnisaga_runtime::catalog::{access, client::ClientSecurity};
use rdkafka::ClientConfig;
use tokio::process::Command;

use crate::bin_dir;

/// Where the broker is and how its admin logs in.
#[derive(Debug, Clone)]
pub struct KafkaAccess {
    /// Bootstrap servers.
    pub brokers: String,
    /// The admin's login (plain text where the broker has no users).
    pub admin: ClientSecurity,
}

impl KafkaAccess {
    pub fn new(brokers: &str, admin: ClientSecurity) -> Self {
        Self {
            brokers: brokers.to_owned(),
            admin,
        }
    }

    /// A client configuration for the admin.
    pub fn admin_client(&self) -> ClientConfig {
        self.client_as(&self.admin)
    }

    /// A client configuration logged in as `security` says.
    pub fn client_as(&self, security: &ClientSecurity) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("broker.address.family", "v4");
        for (key, value) in security.settings() {
            config.set(key, value);
        }
        config
    }

    /// The environment that gives a process (the CLI) the admin's access.
    pub fn admin_env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.admin.env();
        env.push(("KAFKA_BROKERS", self.brokers.clone()));
        env
    }
}

/// The users of a stack: where their passwords are and what they are called.
#[derive(Debug, Clone)]
pub struct KafkaUsers {
    pub prefix: String,
    pub dir: PathBuf,
}

impl KafkaUsers {
    /// The login of `who` (a service, or `analyst`).
    pub fn login(&self, who: &str) -> Result<ClientSecurity> {
        ClientSecurity::scram_from_file(&access::user(&self.prefix, who), self.password_file(who))
    }

    /// The file holding `who`'s password.
    pub fn password_file(&self, who: &str) -> PathBuf {
        self.dir.join(format!("{who}.password"))
    }

    /// The environment that logs service `who` in.
    pub fn env(&self, who: &str) -> Vec<(&'static str, String)> {
        vec![
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext".to_owned()),
            ("KAFKA_USERNAME", access::user(&self.prefix, who)),
            (
                "KAFKA_PASSWORD_FILE",
                self.password_file(who).display().to_string(),
            ),
        ]
    }
}

/// Creates the topics, users and ACLs of a stack under `prefix` with
/// `omnisaga kafka provision`, the passwords in `dir`; `None` when the
/// broker has no users (its admin logs in with none), and the services then
/// connect without one.
/// Topics get `replication` replicas.
pub(crate) async fn provision(
    kafka: &KafkaAccess,
    prefix: &str,
    dir: &Path,
    replication: usize,
) -> Result<Option<KafkaUsers>> {
    if kafka.admin.username().is_none() {
        return Ok(None);
    }
    let bin = bin_dir()?.join("omnisaga");
    let output = Command::new(&bin)
        .args(["kafka", "provision", "--json", "--credentials"])
        .arg(dir)
        .args(["--replication-factor", &replication.to_string()])
        .envs(kafka.admin_env())
        .env("KAFKA_TOPIC_PREFIX", prefix)
        .env_remove("KAFKA_PASSWORD_FILE")
        .output()
        .await
        .with_context(|| {
            format!(
                "Failed to run {} (build it with `cargo build --bins`)",
                bin.display()
            )
        })?;
    ensure!(
        output.status.success(),
        "omnisaga kafka provision failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Some(KafkaUsers {
        prefix: prefix.to_owned(),
        dir: dir.to_owned(),
    }))
}

/// What a Kafka node's listener at `addr` answers a client that never
/// logged in and asks it to describe the cluster (DescribeCluster v1, for
/// a controller's endpoints): `Some(error code)` when it answered, `None`
/// when it closed the connection instead, as a listener that wants SASL
/// first does.
pub async fn describe_cluster_unauthenticated(addr: &str) -> Result<Option<i16>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    const DESCRIBE_CLUSTER: i16 = 60;
    const CORRELATION: i32 = 7;
    let client_id = b"omnisaga-probe";
    let mut request = Vec::new();
    // Header v2: key, version, correlation id, client id, no tagged fields.
    request.extend(DESCRIBE_CLUSTER.to_be_bytes());
    request.extend(1i16.to_be_bytes());
    request.extend(CORRELATION.to_be_bytes());
    request.extend((client_id.len() as i16).to_be_bytes());
    request.extend(client_id);
    request.push(0);
    // Body: no authorized operations, controller endpoints (2), no tagged fields.
    request.extend([0, 2, 0]);
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.write_all(&(request.len() as i32).to_be_bytes()).await?;
    stream.write_all(&request).await?;
    let mut size = [0u8; 4];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_exact(&mut size))
        .await
        .context("the listener neither answered nor closed within 10 s")?;
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let mut response = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    stream.read_exact(&mut response).await?;
    // Header v1: correlation id, tagged fields (none); then the throttle
    // time and the error code.
    ensure!(
        response.len() >= 11 && response[..4] == CORRELATION.to_be_bytes(),
        "{addr} answered something other than DescribeCluster: {response:?}"
    );
    Ok(Some(i16::from_be_bytes([response[9], response[10]])))
}
