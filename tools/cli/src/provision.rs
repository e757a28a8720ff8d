//! `omnisaga kafka provision`: as the broker's admin, the catalog's topics
//! (with their retention), a SCRAM user per service and one for analysts,
//! and the ACLs of [`omnisaga_catalog::access`]. Run before the services
//! start (they may not create topics where ACLs hold); running it again
//! changes nothing.

use std::{
    io::{Read as _, Write as _},
    path::Path,
    time::Duration,
};

use anyhow::{ensure, Context, Result};
use base64::Engine as _;
use omnisaga_catalog::{
    access::{self, Grant, Operation, Resource},
    catalog,
};
use omnisaga_kafka_admin::{Acl, PatternType, ResourceType};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::RDKafkaErrorCode,
};
use serde::Serialize;

use crate::{cli::ProvisionArgs, kafka, output, settings::Settings};

/// How long one admin request may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// What a run did.
#[derive(Debug, Serialize)]
struct Report {
    topics_created: Vec<String>,
    topics_existing: usize,
    users: Vec<User>,
    acls: usize,
}

#[derive(Debug, Serialize)]
struct User {
    name: String,
    password_file: String,
}

/// Runs `kafka provision`.
pub async fn run(args: &ProvisionArgs, settings: &Settings, json: bool) -> Result<()> {
    let security = settings.kafka_security()?;
    ensure!(
        security.username().is_some(),
        "provisioning needs the broker's admin: set KAFKA_USERNAME and KAFKA_PASSWORD (or KAFKA_PASSWORD_FILE)"
    );
    let admin: AdminClient<DefaultClientContext> = kafka::config(settings, "omnisaga-cli")?
        .create()
        .with_context(|| format!("Failed to create a Kafka admin client for {}", settings.brokers))?;
    let prefix = &settings.topic_prefix;

    let spinner = output::spinner("creating topics", json);
    let (topics_created, topics_existing) = create_topics(&admin, prefix, args).await?;

    spinner.set_message("creating users");
    let mut users = Vec::new();
    let mut credentials = Vec::new();
    for who in catalog().principals() {
        let name = access::user(prefix, who);
        let file = args.credentials.join(format!("{who}.password"));
        credentials.push((name.clone(), password(&file)?));
        users.push(User {
            name,
            password_file: file.display().to_string(),
        });
    }
    omnisaga_kafka_admin::upsert_scram_users(&admin, &credentials, TIMEOUT)?;

    spinner.set_message("creating ACLs");
    let acls: Vec<Acl> = catalog().grants(prefix).iter().map(acl).collect();
    omnisaga_kafka_admin::create_acls(&admin, &acls, TIMEOUT)?;
    spinner.finish_and_clear();

    let report = Report {
        topics_created,
        topics_existing,
        users,
        acls: acls.len(),
    };
    if json {
        return output::print_json(&report);
    }
    println!(
        "topics: {} created, {} there already; ACLs: {}",
        report.topics_created.len(),
        report.topics_existing,
        report.acls
    );
    let mut table = output::table(["user", "password file"]);
    for user in &report.users {
        table.add_row([&user.name, &user.password_file]);
    }
    println!("{table}");
    Ok(())
}

/// Creates every catalog topic and its dead-letter topic that the broker
/// lacks; returns those it created and how many were there.
async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    prefix: &str,
    args: &ProvisionArgs,
) -> Result<(Vec<String>, usize)> {
    let partitions = args.partitions.unwrap_or_else(|| catalog().partitions());
    let replicas = args
        .replication_factor
        .unwrap_or_else(|| catalog().replication_factor());
    let min_insync = omnisaga_catalog::min_insync_replicas(replicas).to_string();
    let specs: Vec<(String, String)> = catalog()
        .topics()
        .iter()
        .flat_map(|t| {
            [
                (t.name(prefix), t.retention_ms.to_string()),
                (t.dead_letter_name(prefix), t.dead_letter_retention_ms.to_string()),
            ]
        })
        .collect();
    let new: Vec<NewTopic> = specs
        .iter()
        .map(|(name, retention)| {
            NewTopic::new(name, partitions, TopicReplication::Fixed(replicas))
                .set("retention.ms", retention)
                .set("min.insync.replicas", &min_insync)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    // A broker still starting, or a busy one, can let the request time
    // out; creating is idempotent (an existing topic is reported so), so
    // it is asked again, three times in all.
    let mut attempt = 1;
    let results = loop {
        match admin.create_topics(&new, &opts).await {
            Err(rdkafka::error::KafkaError::AdminOp(rdkafka::types::RDKafkaErrorCode::OperationTimedOut))
                if attempt < 3 =>
            {
                attempt += 1;
            }
            answer => {
                break answer
                    .with_context(|| "Failed to create topics (is the broker up? set KAFKA_BROKERS)")?
            }
        }
    };
    let (mut created, mut existing) = (Vec::new(), 0);
    for result in results {
        match result {
            Ok(name) => created.push(name),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => existing += 1,
            Err((name, code)) => anyhow::bail!("Failed to create topic {name}: {code}"),
        }
    }
    Ok((created, existing))
}

/// The password in `file`, or a new random one written there (owner-only).
fn password(file: &Path) -> Result<String> {
    if let Ok(text) = std::fs::read_to_string(file) {
        let text = text.trim();
        ensure!(!text.is_empty(), "{} is empty", file.display());
        return Ok(text.to_owned());
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("Failed to read /dev/urandom")?;
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let new = file.with_extension("password.new");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options
            .open(&new)
            .with_context(|| format!("Failed to write {}", new.display()))?;
        out.write_all(password.as_bytes())?;
        out.sync_all()?;
    }
    std::fs::rename(&new, file).with_context(|| format!("Failed to write {}", file.display()))?;
    Ok(password)
}

/// A catalog grant as the broker's ACL.
fn acl(grant: &Grant) -> Acl {
    let (resource_type, name, pattern) = match &grant.resource {
        Resource::Topic(name) => (ResourceType::Topic, name.clone(), PatternType::Literal),
        Resource::GroupsStartingWith(prefix) => (ResourceType::Group, prefix.clone(), PatternType::Prefixed),
    };
    Acl {
        resource_type,
        name,
        pattern,
        principal: format!("User:{}", grant.user),
        operation: match grant.operation {
            Operation::Read => omnisaga_kafka_admin::Operation::Read,
            Operation::Write => omnisaga_kafka_admin::Operation::Write,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_made_once_owner_only_and_kept() {
        let dir = std::env::temp_dir().join(format!("omnisaga-cli-pw-{}", std::process::id()));
        let file = dir.join("payment.password");
        let first = password(&file).unwrap();
        assert!(first.len() >= 32, "{first}");
        assert_eq!(password(&file).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn groups_are_granted_by_prefix_and_topics_by_name() {
        let acls: Vec<Acl> = catalog().grants("p.").iter().map(acl).collect();
        assert!(acls.iter().all(|a| a.principal.starts_with("User:p.")));
        assert!(acls
            .iter()
            .all(|a| (a.resource_type == ResourceType::Group) == (a.pattern == PatternType::Prefixed)));
    }
}
