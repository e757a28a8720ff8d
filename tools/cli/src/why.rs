//! `omnisaga order why`: what one order waits for and on whom, each line
//! computed from the services' own APIs: the order's status, stuck state,
//! deadlines and trace id from the order service (`GET
//! /v1/admin/orders/{id}`); the event it waits for and the service that owes
//! it from the saga's stages ([`stage`]) and the topic catalog; each
//! service's dead letters of the order (`GET /v1/admin/dead-letters?key=`);
//! the lag of the order's partition from the consumers on its way (`GET
//! /v1/admin/consumers`), the partition from the key as the producers'
//! partitioner places it and the topic's partition count from the broker.

use anyhow::{bail, Result};
use omnisaga_catalog::catalog;
use serde::Serialize;
use serde_json::Value;

mod print;

use crate::{
    http::{self, Failure},
    kafka, output,
    settings::Settings,
};

/// What an order in a status waits for.
struct Stage {
    /// The events that move it on (either).
    expects: &'static [&'static str],
    /// The event the service that owes them reacts to, when it comes on a topic.
    after: Option<&'static str>,
    /// Who must act first, when it is not that service.
    first: Option<&'static str>,
}

/// The saga's stages (docs/architecture.md): `None` for a finished order.
fn stage(status: &str) -> Option<Stage> {
    Some(match status {
        "PLACED" => Stage {
            expects: &["PaymentAuthorized", "PaymentFailed"],
            after: Some("OrderPlaced"),
            first: None,
        },
        "AWAITING_PAYMENT" => Stage {
            expects: &["PaymentAuthorized", "PaymentFailed"],
            after: Some("PaymentRetryRequested"),
            first: Some("the customer: a payment retry (POST /v1/orders/{id}/payment-retry)"),
        },
        "PAID" => Stage {
            expects: &["OrderReadyForShipment", "StockUnavailable"],
            after: Some("PaymentAuthorized"),
            first: None,
        },
        "READY_FOR_SHIPMENT" => Stage {
            expects: &["OrderShipped"],
            after: None,
            first: None,
        },
        _ => return None,
    })
}

/// What the order waits for.
#[derive(Debug, Serialize)]
struct Waiting {
    events: Vec<String>,
    /// The service that publishes them.
    owed_by: String,
    /// Who must act before, if not that service.
    first: Option<String>,
}

/// A dead letter of the order at a service.
#[derive(Debug, Serialize)]
struct Letter {
    service: String,
    /// Whether later records of the order wait behind it.
    parked: bool,
    letter: Value,
}

/// The order's partition of a topic, as one consumer on its way reads it.
#[derive(Debug, Serialize)]
struct Hop {
    /// The consuming service.
    service: String,
    topic: String,
    partition: Option<i32>,
    /// The consumer's progress on that partition, as its service reports it.
    progress: Option<Value>,
    /// Why there is no progress.
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct Why {
    order_id: String,
    order: Value,
    /// `None` once the order is finished.
    waiting: Option<Waiting>,
    dead_letters: Vec<Letter>,
    /// Services whose dead letters could not be read, and why.
    unknown: Vec<String>,
    lag: Vec<Hop>,
    trace_url: Option<String>,
}

/// Runs `order why <id>`.
pub async fn run(id: &str, settings: &Settings, json: bool) -> Result<()> {
    let spinner = output::spinner("asking the services", json);
    let why = explain(id, settings).await;
    spinner.finish_and_clear();
    let why = why?;
    if json {
        return output::print_json(&why);
    }
    print::print(&why);
    Ok(())
}

async fn explain(id: &str, settings: &Settings) -> Result<Why> {
    let client = http::client(settings)?;
    let admin = |service: &str, path: String| client.get(format!("{}{path}", settings.admin_url(service)));
    let order = match http::try_call(admin("order", format!("/v1/admin/orders/{id}"))).await {
        Ok(order) => order,
        Err(Failure::Status(status, message)) if status == 404 => bail!("order {id} not found: {message}"),
        Err(e) => bail!(
            "order {id}: the order service at {}: {e}",
            settings.admin_url("order")
        ),
    };
    let prefix = &settings.topic_prefix;
    let topic_of = |event: &str| catalog().topics().iter().find(|t| t.carries(event));
    let status = order["status"].as_str().unwrap_or_default();
    let stage = stage(status);
    let mut waiting = None;
    let mut hops: Vec<(String, String)> = Vec::new();
    if let Some(stage) = &stage {
        let owner = topic_of(stage.expects[0]).map_or("?".to_owned(), |t| t.owner.clone());
        if let Some(t) = stage
            .after
            .and_then(topic_of)
            .filter(|t| t.is_consumed_by(&owner))
        {
            hops.push((owner.clone(), t.name(prefix)));
        }
        if let Some(t) = topic_of(stage.expects[0]) {
            hops.push(("order".to_owned(), t.name(prefix)));
        }
        waiting = Some(Waiting {
            events: stage.expects.iter().map(|e| (*e).to_owned()).collect(),
            owed_by: owner,
            first: stage.first.map(|f| f.replace("{id}", id)),
        });
    }

    let letters_of = |service: &'static str| {
        let req = admin(service, "/v1/admin/dead-letters".into()).query(&[("key", id)]);
        async move { (service, http::try_call(req).await) }
    };
    let letters = tokio::join!(
        letters_of("order"),
        letters_of("payment"),
        letters_of("warehouse"),
        letters_of("notification"),
        letters_of("analytics"),
    );
    let letters = [letters.0, letters.1, letters.2, letters.3, letters.4];
    let (mut dead_letters, mut unknown) = (Vec::new(), Vec::new());
    for (service, answer) in letters {
        match answer {
            Ok(body) => {
                let parked = body["parked_keys"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == id));
                for letter in body["items"].as_array().into_iter().flatten() {
                    if letter["key"] == id {
                        dead_letters.push(Letter {
                            service: service.to_owned(),
                            parked,
                            letter: letter.clone(),
                        });
                    }
                }
            }
            Err(e) => unknown.push(format!("{service}: {e}")),
        }
    }

    let mut lag = Vec::new();
    for (service, topic) in hops {
        lag.push(hop(&client, settings, id, service, topic).await);
    }
    let trace_url = order["trace_id"]
        .as_str()
        .map(|t| format!("{}/trace/{t}", settings.traces_url.trim_end_matches('/')));
    Ok(Why {
        order_id: id.to_owned(),
        order,
        waiting,
        dead_letters,
        unknown,
        lag,
        trace_url,
    })
}

/// `service`'s consumer of `topic` on the order's partition.
async fn hop(client: &reqwest::Client, settings: &Settings, id: &str, service: String, topic: String) -> Hop {
    let mut hop = Hop {
        service: service.clone(),
        topic: topic.clone(),
        partition: None,
        progress: None,
        note: None,
    };
    let count = {
        let (settings, topic) = (settings.clone(), topic.clone());
        tokio::task::spawn_blocking(move || {
            let consumer = kafka::base_consumer(&settings, "omnisaga-cli")?;
            kafka::partitions(&consumer, &topic)
        })
        .await
    };
    let partition = match count {
        Ok(Ok(partitions)) if !partitions.is_empty() => partition_of(id, partitions.len() as i32),
        Ok(Err(e)) => {
            hop.note = Some(format!("no partition count from the broker: {e:#}"));
            return hop;
        }
        _ => {
            hop.note = Some("no partition count from the broker".into());
            return hop;
        }
    };
    hop.partition = Some(partition);
    let url = format!("{}/v1/admin/consumers", settings.admin_url(&service));
    match http::try_call(client.get(url)).await {
        Ok(body) => {
            hop.progress = body["consumers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| {
                    c["partitions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(move |p| (c, p))
                })
                .find(|(_, p)| p["topic"] == topic.as_str() && p["partition"] == partition)
                .map(|(c, p)| {
                    let mut p = p.clone();
                    p["consumer"] = c["name"].clone();
                    p
                });
            if hop.progress.is_none() {
                hop.note = Some(format!(
                    "the {service} instance that answered is not assigned {topic}[{partition}]"
                ));
            }
        }
        Err(e) => hop.note = Some(format!("{service}: {e}")),
    }
    hop
}

/// The partition librdkafka's default partitioner (`consistent_random`)
/// puts a record keyed `key` in: CRC-32 of the key modulo the count.
fn partition_of(key: &str, partitions: i32) -> i32 {
    (crc32(key.as_bytes()) % partitions as u32) as i32
}

/// CRC-32 (IEEE 802.3), as librdkafka's `rd_crc32`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_is_librdkafkas_crc32_of_the_key() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(partition_of("123456789", 3), (0xCBF4_3926u32 % 3) as i32);
    }

    #[test]
    fn every_open_status_waits_on_a_catalog_topic_and_finished_ones_on_nothing() {
        for status in ["PLACED", "AWAITING_PAYMENT", "PAID", "READY_FOR_SHIPMENT"] {
            let s = stage(status).unwrap();
            for event in s.expects.iter().chain(s.after.iter()) {
                assert!(
                    catalog().topics().iter().any(|t| t.carries(event)),
                    "{status}: {event} is on no topic"
                );
            }
        }
        assert!(stage("SHIPPED").is_none() && stage("CANCELLED").is_none());
    }
}
