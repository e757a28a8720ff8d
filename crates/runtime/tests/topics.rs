//! Topics are created from the catalog as the configuration says: the
//! partitions, the replication factor with `min.insync.replicas` one fewer,
//! and the catalog's retention; a replication factor the cluster cannot
//! give is refused with the reason.

use std::time::Duration;

use anyhow::Result;
use omnisaga_runtime::{catalog::catalog, kafka, testing};
use rdkafka::{
    admin::{AdminClient, AdminOptions, ResourceSpecifier},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer as _},
};

/// The value of `key` in `topic`'s configuration.
async fn topic_config(admin: &AdminClient<DefaultClientContext>, topic: &str, key: &str) -> Result<String> {
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await?;
    let resource = described
        .into_iter()
        .next()
        .expect("one resource")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let entry = resource
        .get(key)
        .ok_or_else(|| anyhow::anyhow!("{topic} has no {key}"))?;
    Ok(entry.value.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_with_the_configured_partitions_replicas_and_the_catalogs_retention() -> Result<()>
{
    let mut kafka = testing::fresh_kafka()?;
    kafka.topic_partitions = 2;
    kafka.topic_replication_factor = 1;
    kafka::ensure_service_topics(&kafka, "payment").await?;

    let orders = catalog().owned_by("order").expect("order owns a topic");
    let name = orders.name(&kafka.topic_prefix);
    let consumer: BaseConsumer = kafka::base(&kafka).create()?;
    // A topic just created may be listed without its partitions until the
    // broker's metadata has caught up: wait for them, then judge them.
    let partitions = testing::wait_for(
        &format!("{name}'s partitions in the metadata"),
        Duration::from_secs(30),
        || async {
            let metadata =
                tokio::task::block_in_place(|| consumer.fetch_metadata(Some(&name), Duration::from_secs(10)))
                    .ok()?;
            let replicas: Vec<usize> = metadata.topics()[0]
                .partitions()
                .iter()
                .map(|p| p.replicas().len())
                .collect();
            (!replicas.is_empty()).then_some(replicas)
        },
    )
    .await?;
    assert_eq!(partitions.len(), 2, "{name}'s partitions");
    assert!(
        partitions.iter().all(|&r| r == 1),
        "{name}'s replicas: {partitions:?}"
    );

    let admin: AdminClient<DefaultClientContext> = kafka::base(&kafka).create()?;
    assert_eq!(topic_config(&admin, &name, "min.insync.replicas").await?, "1");
    assert_eq!(
        topic_config(&admin, &name, "retention.ms").await?,
        orders.retention_ms.to_string()
    );
    Ok(())
}

#[tokio::test]
async fn a_replication_factor_the_cluster_cannot_give_is_refused_with_the_reason() -> Result<()> {
    let mut kafka = testing::fresh_kafka()?;
    kafka.topic_replication_factor = 3;
    let err = kafka::ensure_service_topics(&kafka, "warehouse")
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("replication factor"), "{err}");
    assert!(err.contains(&kafka.topic_prefix), "names the topic: {err}");
    Ok(())
}
