//! The compiled-in catalog holds together and agrees with the proto
//! `Envelope`; a catalog that drifts (a type on two topics or on none, a
//! dead-letter topic misnamed) is refused with the reason.

use std::collections::BTreeSet;

use prost::Message;
use prost_types::{field_descriptor_proto::Type, FileDescriptorSet};
use serde_json::Value;

use super::*;

/// The message types of the `Envelope`'s `oneof payload`, from the
/// descriptor set the proto crate compiled.
fn payload_types() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(omnisaga_proto::DESCRIPTOR_SET).unwrap();
    let envelope = set
        .file
        .iter()
        .filter(|f| f.package() == "omnisaga.v1")
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == "Envelope")
        .expect("omnisaga.v1.Envelope");
    envelope
        .field
        .iter()
        .filter(|f| f.oneof_index.is_some() && f.r#type() == Type::Message)
        .map(|f| f.type_name().rsplit('.').next().unwrap().to_owned())
        .collect()
}

/// What the catalog and the `Envelope` disagree on: payloads no topic
/// carries, and message types that are no payload.
fn disagreement(catalog: &Catalog) -> (Vec<String>, Vec<String>) {
    let listed: BTreeSet<String> = catalog
        .topics()
        .iter()
        .flat_map(|t| t.message_types.iter().cloned())
        .chain(catalog.unpublished().iter().map(|u| u.message_type.clone()))
        .collect();
    let payloads = payload_types();
    (
        payloads.difference(&listed).cloned().collect(),
        listed.difference(&payloads).cloned().collect(),
    )
}

/// The published catalog with `change` made to its JSON.
fn edited(change: impl FnOnce(&mut Value)) -> Result<Catalog> {
    let mut json: Value = serde_json::from_str(JSON).unwrap();
    change(&mut json);
    Catalog::parse(&json.to_string())
}

fn topic_of<'a>(json: &'a mut Value, owner: &str) -> &'a mut Value {
    json["topics"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|t| t["owner"] == owner)
        .unwrap()
}

#[test]
fn the_published_catalog_holds_together() {
    Catalog::parse(JSON).unwrap();
    assert_eq!(catalog().topics().len(), 4);
}

#[test]
fn every_payload_of_the_envelope_is_carried_by_exactly_one_topic() {
    assert_eq!(
        disagreement(catalog()),
        (vec![], vec![]),
        "(payloads no topic carries, message types that are no payload): \
         schemas/topics.json and proto/omnisaga/v1/events.proto disagree"
    );
    let unpublished = |t: &str| catalog().unpublished().iter().any(|u| u.message_type == t);
    for event_type in payload_types() {
        let carriers = catalog().topics().iter().filter(|t| t.carries(&event_type));
        assert_eq!(
            carriers.count() + usize::from(unpublished(&event_type)),
            1,
            "{event_type}"
        );
    }
}

#[test]
fn a_payload_missing_from_the_catalog_or_a_type_that_is_no_payload_is_found() {
    let mut catalog = catalog().clone();
    let orders = &mut catalog.topics[0];
    let dropped = orders.message_types.remove(0);
    orders.message_types.push("OrderTeleported".into());
    assert_eq!(
        disagreement(&catalog),
        (vec![dropped], vec!["OrderTeleported".to_owned()])
    );
}

#[test]
fn an_unpublished_type_is_on_no_topic() {
    let err = edited(|json| {
        let kept = json["unpublished"][0]["message_type"]
            .as_str()
            .unwrap()
            .to_owned();
        topic_of(json, "warehouse")["message_types"]
            .as_array_mut()
            .unwrap()
            .push(kept.into());
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("GoodsReceived is unpublished and carried by a topic"),
        "{err}"
    );
}

#[test]
fn a_type_on_two_topics_is_refused() {
    let err = edited(|json| {
        topic_of(json, "payment")["message_types"]
            .as_array_mut()
            .unwrap()
            .push("OrderPlaced".into());
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("OrderPlaced is carried by two topics"),
        "{err}"
    );
}

#[test]
fn a_dead_letter_topic_not_named_after_its_topic_is_refused() {
    let err = edited(|json| {
        topic_of(json, "order")["dead_letter_topic"] = "omnisaga.orders.v1.dead".into();
    })
    .unwrap_err();
    assert!(err.to_string().contains("dead-letter topic"), "{err}");
}

#[test]
fn topics_with_different_partitions_are_refused() {
    let err = edited(|json| topic_of(json, "warehouse")["partitions"] = 3.into()).unwrap_err();
    assert!(err.to_string().contains("KAFKA_TOPIC_PARTITIONS"), "{err}");
}

#[test]
fn topics_with_different_replication_factors_or_none_are_refused() {
    let err = edited(|json| topic_of(json, "payment")["replication_factor"] = 3.into()).unwrap_err();
    assert!(
        err.to_string().contains("KAFKA_TOPIC_REPLICATION_FACTOR"),
        "{err}"
    );
    let err = edited(|json| topic_of(json, "order")["replication_factor"] = 0.into()).unwrap_err();
    assert!(err.to_string().contains("replication factor of 0"), "{err:#}");
}

#[test]
fn a_write_survives_a_broker_and_three_brokers_take_writes_with_one_down() {
    assert_eq!(min_insync_replicas(1), 1);
    assert_eq!(min_insync_replicas(2), 1);
    assert_eq!(min_insync_replicas(3), 2);
    assert_eq!(min_insync_replicas(5), 2);
}

#[test]
fn a_service_owning_two_topics_is_refused() {
    let err = edited(|json| topic_of(json, "notification")["owner"] = "order".into()).unwrap_err();
    assert!(err.to_string().contains("order owns two topics"), "{err}");
}

#[test]
fn the_retention_prose_states_the_retention_the_topics_get() {
    let json: Value = serde_json::from_str(JSON).unwrap();
    for (t, prose) in catalog().topics().iter().zip(json["topics"].as_array().unwrap()) {
        let prose = prose["retention"].as_str().unwrap();
        assert!(
            prose.contains(&t.retention_ms.to_string())
                && prose.contains(&t.dead_letter_retention_ms.to_string()),
            "{}: {prose:?} does not say {} and {}",
            t.base_name(),
            t.retention_ms,
            t.dead_letter_retention_ms
        );
    }
}

#[test]
fn names_follow_the_prefix_and_dead_letters_their_topic() {
    let orders = catalog().owned_by("order").unwrap();
    assert_eq!(orders.base_name(), "orders.v1");
    assert_eq!(orders.name(DEFAULT_PREFIX), "omnisaga.orders.v1");
    assert_eq!(orders.name("t1."), "t1.orders.v1");
    assert_eq!(orders.dead_letter_name("t1."), "t1.orders.v1.dlq");
    assert_eq!(
        catalog().carrying("PaymentVoided").map(|t| t.owner.as_str()),
        Some("payment")
    );
    assert!(catalog().publishes("payment", "PaymentVoided"));
    assert!(!catalog().publishes("order", "PaymentVoided"));
}

fn set(types: &[&str]) -> BTreeSet<String> {
    types.iter().map(|t| (*t).to_owned()).collect()
}

/// Payment as the catalog describes it: publishes its three types, acts on
/// the orders and warehouse topics.
fn payment_as_listed() -> (BTreeSet<String>, BTreeSet<String>) {
    (
        set(&["PaymentAuthorized", "PaymentFailed", "PaymentVoided"]),
        set(&["OrderPlaced", "OrderCancelled", "StockUnavailable"]),
    )
}

#[test]
fn a_service_that_publishes_and_consumes_what_the_catalog_says_does_not_drift() {
    let (publishes, reacts_to) = payment_as_listed();
    assert_eq!(
        catalog().drift("payment", &publishes, &reacts_to),
        Vec::<String>::new()
    );
}

#[test]
fn drift_is_found_both_ways_for_publishers() {
    let (mut publishes, reacts_to) = payment_as_listed();
    publishes.remove("PaymentVoided");
    publishes.insert("OrderShipped".into());
    publishes.insert("PaymentRefunded".into());
    let drift = catalog().drift("payment", &publishes, &reacts_to);
    assert_eq!(drift.len(), 3, "{drift:#?}");
    assert!(
        drift[0].contains("OrderShipped, which the catalog puts on omnisaga.warehouse.v1"),
        "{drift:#?}"
    );
    assert!(
        drift[1].contains("PaymentRefunded, which no topic carries"),
        "{drift:#?}"
    );
    assert!(
        drift[2].contains("lists PaymentVoided, which its owner payment never publishes"),
        "{drift:#?}"
    );
}

#[test]
fn drift_is_found_both_ways_for_consumers() {
    let (publishes, _) = payment_as_listed();
    // Acts on notifications (a topic it does not consume) and on nothing
    // the warehouse publishes (a topic it does consume).
    let reacts_to = set(&["OrderPlaced", "NotificationSent"]);
    let drift = catalog().drift("payment", &publishes, &reacts_to);
    assert_eq!(
        drift,
        [
            "payment acts on NotificationSent, but the catalog does not list it as a consumer of omnisaga.notifications.v1",
            "the catalog lists payment as a consumer of omnisaga.warehouse.v1, but it acts on none of its types",
        ]
    );
}

#[test]
fn every_payload_sample_is_one_of_each_payload_type() {
    let sampled: BTreeSet<String> = omnisaga_proto::every_payload()
        .iter()
        .map(|p| p.event_type().to_owned())
        .collect();
    assert_eq!(sampled, payload_types());
    // One per payload field: each version of a type is a field of its own.
    let set = FileDescriptorSet::decode(omnisaga_proto::DESCRIPTOR_SET).unwrap();
    let fields = set
        .file
        .iter()
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == "Envelope")
        .unwrap()
        .field
        .iter()
        .filter(|f| f.oneof_index.is_some())
        .count();
    assert_eq!(omnisaga_proto::every_payload().len(), fields);
}
