//! Any bytes as a `POST /v1/orders` body, through every check the handler
//! makes before it reads the database, in its order: JSON shape (unknown
//! fields refused), validation, the idempotency hash, pricing from the
//! catalog, then the order aggregate's decision. Every refusal is a 4xx with
//! a code `schemas/errors.json` documents; a body that passes places an
//! order with exactly the items asked for, and the event published on the
//! shared topic carries no payment token, name or street address (country
//! and postal area only).
#![no_main]

use std::{collections::HashSet, sync::LazyLock};

use libfuzzer_sys::fuzz_target;
use omnisaga_order::{
    api::{fuzzing, PlaceOrderRequest},
    domain::{decide, Command, Event, PlaceOrder},
    store::CatalogItem,
    wire::without_personal_data,
};
use omnisaga_proto::v1::envelope::Payload;
use omnisaga_runtime::http::{decode_json, ApiError};

/// The service's default limits.
const MAX_ITEMS: usize = 50;
const MAX_QUANTITY: u32 = 100;

static DOCUMENTED: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../schemas/errors.json")).expect("errors.json is JSON");
    doc["errors"]
        .as_array()
        .expect("errors.json lists errors")
        .iter()
        .map(|e| e["code"].as_str().expect("each error has a code").to_owned())
        .collect()
});

static CATALOG: LazyLock<Vec<CatalogItem>> = LazyLock::new(|| {
    ["SKU-1", "SKU-2", "SKU-3", "KEYBOARD-01", "MOUSE-01"]
        .iter()
        .enumerate()
        .map(|(i, sku)| CatalogItem {
            sku: (*sku).to_owned(),
            name: format!("item {i}"),
            unit_price_minor: 100 * (i as i64 + 1),
            currency: "EUR".into(),
        })
        .collect()
});

fn refused(e: ApiError) {
    assert!(e.status.is_client_error(), "{} answered {}", e.code, e.status);
    assert!(DOCUMENTED.contains(e.code), "undocumented error code {}", e.code);
}

fuzz_target!(|body: &[u8]| {
    let req: PlaceOrderRequest = match decode_json(body) {
        Ok(req) => req,
        Err(e) => return refused(e),
    };
    if let Err(e) = fuzzing::validate_within(&req, MAX_ITEMS, MAX_QUANTITY) {
        return refused(e);
    }
    let hash = fuzzing::request_hash(&req).expect("a valid request hashes");
    assert_eq!(
        fuzzing::request_hash(&req).unwrap(),
        hash,
        "the idempotency hash is stable"
    );
    let items = match fuzzing::priced_items(&req, &CATALOG) {
        Ok(items) => items,
        Err(e) => return refused(e),
    };
    let address = req.shipping_address.to_address();
    let cmd = Command::Place(PlaceOrder {
        order_id: "0190e1c4-0000-7000-8000-000000000000".into(),
        order_number: "ORD-1".into(),
        customer_id: "customer".into(),
        channel: req.channel.into(),
        items: items.clone(),
        shipping_address: address.clone(),
        payment_method_token: req.payment_method.clone(),
        estimated_delivery: "2026-12-01".into(),
    });
    let events = decide(None, cmd).expect("a validated, priced order is placed");
    let Some(Event::OrderPlaced(placed)) = events.first() else {
        panic!("placing an order did not start with OrderPlaced: {events:?}")
    };
    assert_eq!(placed.items, items);
    let mut public = Payload::OrderPlaced(placed.clone());
    without_personal_data(&mut public);
    let Payload::OrderPlaced(public) = public else {
        unreachable!("without_personal_data keeps the payload's type")
    };
    assert!(
        public.payment_method_token.is_empty(),
        "the payment token is on the shared topic"
    );
    let shared = public.shipping_address.unwrap_or_default();
    assert_eq!(shared.country, address.country);
    assert!(
        shared.name.is_empty()
            && shared.line1.is_empty()
            && shared.line2.is_empty()
            && shared.city.is_empty(),
        "a name or street address is on the shared topic: {shared:?}"
    );
    assert!(address.postal_code.starts_with(&shared.postal_code) && shared.postal_code.chars().count() <= 2);
    assert_eq!(public.items, items);
});
