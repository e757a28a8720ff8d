//! The API's request and response bodies as typed structs.
//!
//! Response fields are declared in alphabetical order: the bodies were first
//! built as `serde_json` maps, which serialize their keys sorted, and declaring
//! them so keeps every response the same bytes. An absent value is `null`,
//! never an omitted field.

use chrono::{DateTime, Utc};
use omnisaga_proto::v1::{envelope::Payload, Address, Channel, LineItem, Money};
use omnisaga_runtime::{event, store::StoredEvent, upcast};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain;

mod payment;

pub(super) use payment::PaymentState;

/// The channel an order comes in through, as the API spells it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[schema(as = Channel)]
#[serde(rename_all = "lowercase")]
pub enum ChannelDto {
    Mobile,
    Web,
    Pos,
    Marketplace,
}

impl From<ChannelDto> for Channel {
    fn from(c: ChannelDto) -> Self {
        match c {
            ChannelDto::Mobile => Channel::Mobile,
            ChannelDto::Web => Channel::Web,
            ChannelDto::Pos => Channel::Pos,
            ChannelDto::Marketplace => Channel::Marketplace,
        }
    }
}

impl ChannelDto {
    /// Its name in the API (and in the order view).
    pub fn name(self) -> &'static str {
        domain::channel_name(Channel::from(self) as i32)
    }
}

/// One line of `POST /v1/orders`. Each SKU at most once; prices come from the catalog.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    #[schema(min_length = 1, max_length = 64)]
    pub sku: String,
    /// At most ORDER_MAX_QUANTITY (100).
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
}

/// The shipping address of `POST /v1/orders`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Address)]
pub struct AddressDto {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub line1: String,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub line2: String,
    #[schema(min_length = 1, max_length = 100)]
    pub city: String,
    #[schema(min_length = 1, max_length = 20)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: String,
}

impl AddressDto {
    /// The address as the order keeps it, text fields trimmed.
    pub fn to_address(&self) -> Address {
        Address {
            name: self.name.trim().to_owned(),
            line1: self.line1.trim().to_owned(),
            line2: self.line2.trim().to_owned(),
            city: self.city.trim().to_owned(),
            postal_code: self.postal_code.trim().to_owned(),
            country: self.country.clone(),
        }
    }
}

// Its JSON is also what the idempotency key's request hash is taken over,
// so its fields and their order stay put.
/// An order to place. A field it does not know (a price, a total, a
/// status) is refused (`unknown_field`): the client does not set what the
/// server decides. The customer is the bearer token's subject: a
/// customer_id in the body is refused (422).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PlaceOrder)]
pub struct PlaceOrderRequest {
    pub channel: ChannelDto,
    /// At most ORDER_MAX_ITEMS (50) lines.
    #[schema(min_items = 1, max_items = 50)]
    pub items: Vec<ItemRequest>,
    pub shipping_address: AddressDto,
    /// Payment method token from the provider (tok_visa, tok_decline, tok_insufficient_funds, tok_unavailable in the simulator); never card data.
    #[schema(max_length = 128, pattern = "^[A-Za-z0-9_-]+$")]
    pub payment_method: String,
    #[serde(default)]
    #[schema(ignore)]
    pub customer_id: Option<String>,
}

/// The query of `GET /v1/orders`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Orders per page, 1 to 100 (20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The previous page's next_cursor (an order id: the page starts after it).
    #[param(format = Uuid)]
    pub cursor: Option<String>,
}

/// One page of `GET /v1/orders`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    pub items: Vec<OrderSummary>,
    /// Pass it as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// An order in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummary {
    pub order_id: Uuid,
    pub order_number: String,
    #[schema(value_type = domain::Status)]
    pub status: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The body of `POST /v1/orders/{id}/payment-retry`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentRetry)]
pub struct RetryRequest {
    /// Another payment method token.
    #[schema(max_length = 128, pattern = "^[A-Za-z0-9_-]+$")]
    pub payment_method: String,
}

/// An amount; a missing one is zero with an empty currency.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Money)]
pub(super) struct MoneyDto {
    /// ISO 4217.
    #[schema(pattern = "^([A-Z]{3})?$")]
    pub currency: String,
    /// Integer minor units (cents).
    pub minor_units: i64,
}

impl From<Option<&Money>> for MoneyDto {
    fn from(m: Option<&Money>) -> Self {
        let m = m.cloned().unwrap_or_default();
        Self {
            currency: m.currency,
            minor_units: m.minor_units,
        }
    }
}

/// The answer of `GET /v1/catalog`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CatalogResponse {
    pub items: Vec<CatalogEntry>,
}

/// One SKU of the catalog; `available` is `null` when the warehouse's stock
/// is unknown.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CatalogEntry {
    pub available: Option<i64>,
    pub name: String,
    pub sku: String,
    pub unit_price: MoneyDto,
}

/// The answer of `POST /v1/orders`, stored with its idempotency key.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OrderPlacedResponse)]
pub(super) struct PlaceOrderResponse {
    /// ISO 8601 date.
    #[schema(format = Date)]
    pub estimated_delivery: String,
    pub order_id: Uuid,
    pub order_number: String,
    #[schema(value_type = domain::Status)]
    pub status: &'static str,
    pub total: MoneyDto,
    pub trace_id: Option<String>,
}

/// The answer of `POST /v1/orders/{id}/payment-retry`, stored with its
/// idempotency key.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RetryResponse {
    pub attempt: u32,
    pub order_id: Uuid,
    #[schema(value_type = domain::Status)]
    pub status: &'static str,
}

/// The answer of `POST /v1/orders/{id}/cancel`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CancelResponse {
    pub order_id: Uuid,
    pub reason: Option<String>,
    #[schema(value_type = domain::Status)]
    pub status: &'static str,
}

impl CancelResponse {
    pub fn new(order_id: Uuid, order: &domain::Order) -> Self {
        Self {
            order_id,
            reason: order.cancel_reason.clone(),
            status: order.status.as_str(),
        }
    }
}

/// The answer of `GET /v1/orders/{id}`: the order and its timeline.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Order)]
pub(super) struct OrderResponse {
    /// Why it was cancelled (`customer_request`, `payment_deadline_passed`,
    /// `stock_unavailable`, ...); null unless it was.
    pub cancel_reason: Option<String>,
    /// mobile, web, pos, marketplace or unspecified.
    pub channel: &'static str,
    pub customer_id: Option<String>,
    /// Waiting in its status past that stage's deadline: the customer was told it is delayed and operators were alerted; it goes on when the news it waits for comes.
    pub escalated: bool,
    /// ISO 8601 date.
    #[schema(format = Date)]
    pub estimated_delivery: String,
    pub items: Vec<OrderItem>,
    #[schema(format = Uuid)]
    pub order_id: String,
    pub order_number: String,
    pub payment: PaymentState,
    pub placed_at: Option<DateTime<Utc>>,
    /// The parcels it left in, each with its tracking number; null until it ships.
    pub shipment: Option<Shipment>,
    #[schema(value_type = domain::Status)]
    pub status: &'static str,
    pub timeline: Vec<TimelineEntry>,
    pub total: MoneyDto,
    pub trace_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// How a shipped order left: one parcel or more.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Shipment {
    pub parcels: Vec<Parcel>,
}

/// A parcel and where to follow it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Parcel {
    pub carrier: String,
    pub tracking_number: String,
}

impl Shipment {
    /// The shipment `events` record, if the order shipped; a version 1
    /// `OrderShipped` read through the upcaster (one parcel).
    fn of(events: &[StoredEvent]) -> Option<Self> {
        let shipped = events.iter().find_map(|e| match &e.envelope.payload {
            Some(Payload::OrderShippedV2(shipped)) => Some(shipped.clone()),
            Some(Payload::OrderShipped(v1)) => Some(upcast::order_shipped(v1)),
            _ => None,
        })?;
        Some(Self {
            parcels: shipped
                .parcels
                .into_iter()
                .map(|p| Parcel {
                    carrier: p.carrier,
                    tracking_number: p.tracking_number,
                })
                .collect(),
        })
    }
}

/// One line of an order.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrderItem {
    pub name: String,
    pub quantity: u32,
    pub sku: String,
    pub unit_price: MoneyDto,
}

/// One event of an order's stream, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct TimelineEntry {
    #[schema(format = Uuid)]
    pub event_id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub service: String,
}

impl OrderResponse {
    /// The order folded from `events`, with the trace that placed it and
    /// the payment deadline its view holds.
    pub fn new(
        order: &domain::Order,
        events: &[StoredEvent],
        trace_id: Option<String>,
        payment_deadline: Option<DateTime<Utc>>,
    ) -> Self {
        let p = &order.placed;
        Self {
            cancel_reason: order.cancel_reason.clone(),
            channel: domain::channel_name(p.channel),
            customer_id: p.customer.as_ref().map(|c| c.customer_id.clone()),
            escalated: order.escalated == Some(order.status),
            estimated_delivery: p.estimated_delivery.clone(),
            items: p.items.iter().map(OrderItem::from).collect(),
            order_id: p.order_id.clone(),
            order_number: p.order_number.clone(),
            payment: PaymentState::of(order, events, payment_deadline),
            placed_at: events.first().map(|e| event::occurred_at(&e.envelope)),
            shipment: Shipment::of(events),
            status: order.status.as_str(),
            timeline: events.iter().map(TimelineEntry::from).collect(),
            total: p.total.as_ref().into(),
            trace_id,
            updated_at: events.last().map(|e| event::occurred_at(&e.envelope)),
        }
    }
}

impl From<&LineItem> for OrderItem {
    fn from(i: &LineItem) -> Self {
        Self {
            name: i.name.clone(),
            quantity: i.quantity,
            sku: i.sku.clone(),
            unit_price: i.unit_price.as_ref().into(),
        }
    }
}

impl From<&StoredEvent> for TimelineEntry {
    fn from(e: &StoredEvent) -> Self {
        Self {
            event_id: e.envelope.event_id.clone(),
            event_type: e.envelope.event_type.clone(),
            occurred_at: event::occurred_at(&e.envelope),
            service: e.envelope.producer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each response serializes to the same bytes as the `json!` map it
    //! replaced (copied here as it was), nulls included.

    use omnisaga_proto::v1::{Customer, Envelope, OrderPlaced};
    use omnisaga_runtime::store::StoredEvent;
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::Status;

    fn same_bytes(typed: impl Serialize, was: Value) {
        assert_eq!(
            serde_json::to_string(&typed).unwrap(),
            serde_json::to_string(&was).unwrap()
        );
    }

    fn money_json(m: &Option<Money>) -> Value {
        let m = m.clone().unwrap_or_default();
        json!({"minor_units": m.minor_units, "currency": m.currency})
    }

    fn eur(minor_units: i64) -> Option<Money> {
        Some(Money {
            minor_units,
            currency: "EUR".into(),
        })
    }

    fn order(customer: Option<&str>, cancel_reason: Option<&str>) -> domain::Order {
        domain::Order {
            placed: OrderPlaced {
                order_id: Uuid::nil().to_string(),
                order_number: "ORD-1".into(),
                customer: customer.map(|c| Customer {
                    customer_id: c.into(),
                }),
                channel: Channel::Web as i32,
                items: vec![LineItem {
                    sku: "SKU-1".into(),
                    name: "Mug".into(),
                    quantity: 2,
                    unit_price: eur(1250),
                }],
                total: eur(2500),
                estimated_delivery: "2026-12-02".into(),
                ..Default::default()
            },
            status: Status::Cancelled,
            attempts: 2,
            retry_pending: false,
            delay_noticed: false,
            escalated: None,
            cancel_reason: cancel_reason.map(str::to_owned),
        }
    }

    fn stored(event_type: &str, producer: &str) -> StoredEvent {
        StoredEvent {
            version: 1,
            envelope: Envelope {
                event_id: Uuid::nil().to_string(),
                event_type: event_type.into(),
                producer: producer.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn money_reads_as_before_even_when_missing() {
        for m in [eur(1250), None] {
            same_bytes(MoneyDto::from(m.as_ref()), money_json(&m));
        }
    }

    #[test]
    fn catalog_reads_as_before_with_and_without_stock() {
        for available in [Some(3), None] {
            let typed = CatalogResponse {
                items: vec![CatalogEntry {
                    available,
                    name: "Mug".into(),
                    sku: "SKU-1".into(),
                    unit_price: MoneyDto::from(eur(1250).as_ref()),
                }],
            };
            let was = json!({ "items": [json!({
                "sku": "SKU-1",
                "name": "Mug",
                "unit_price": {"minor_units": 1250, "currency": "EUR"},
                "available": available,
            })] });
            same_bytes(typed, was);
        }
    }

    #[test]
    fn placed_order_reads_as_before_with_and_without_a_trace() {
        let order_id = Uuid::now_v7();
        for trace_id in [Some("4bf92f3577b34da6a3ce929d0e0e4736"), None] {
            let typed = PlaceOrderResponse {
                estimated_delivery: "2026-12-02".into(),
                order_id,
                order_number: "ORD-1".into(),
                status: "PLACED",
                total: MoneyDto::from(eur(2500).as_ref()),
                trace_id: trace_id.map(str::to_owned),
            };
            let was = json!({
                "order_id": order_id,
                "order_number": "ORD-1",
                "status": "PLACED",
                "estimated_delivery": "2026-12-02",
                "total": money_json(&eur(2500)),
                "trace_id": trace_id,
            });
            same_bytes(typed, was);
        }
    }

    #[test]
    fn retry_and_cancel_answers_read_as_before() {
        let order_id = Uuid::now_v7();
        let o = order(Some("c-1"), None);
        same_bytes(
            RetryResponse {
                attempt: o.attempts,
                order_id,
                status: o.status.as_str(),
            },
            json!({"order_id": order_id, "status": o.status.as_str(), "attempt": o.attempts}),
        );
        for reason in [Some("customer_request"), None] {
            let o = order(None, reason);
            same_bytes(
                CancelResponse::new(order_id, &o),
                json!({"order_id": order_id, "status": o.status.as_str(), "reason": o.cancel_reason}),
            );
        }
    }

    #[test]
    fn order_with_its_timeline_reads_as_before() {
        let events = [
            stored("OrderPlaced", "order"),
            stored("PaymentAuthorized", "payment"),
        ];
        for (o, events, trace_id) in [
            (
                order(Some("c-1"), Some("customer_request")),
                &events[..],
                Some("t".to_owned()),
            ),
            (order(None, None), &[][..], None),
        ] {
            let p = &o.placed;
            let timeline: Vec<Value> = events
                .iter()
                .map(|e| {
                    json!({
                        "event_type": e.envelope.event_type,
                        "occurred_at": event::occurred_at(&e.envelope),
                        "service": e.envelope.producer,
                        "event_id": e.envelope.event_id,
                    })
                })
                .collect();
            let items: Vec<Value> = p
                .items
                .iter()
                .map(|i| json!({"sku": i.sku, "name": i.name, "quantity": i.quantity, "unit_price": money_json(&i.unit_price)}))
                .collect();
            let was = json!({
                "order_id": p.order_id,
                "order_number": p.order_number,
                "customer_id": p.customer.as_ref().map(|c| c.customer_id.clone()),
                "channel": domain::channel_name(p.channel),
                "status": o.status.as_str(),
                "escalated": false,
                "items": items,
                "total": money_json(&p.total),
                "estimated_delivery": p.estimated_delivery,
                "trace_id": trace_id,
                "placed_at": events.first().map(|e| event::occurred_at(&e.envelope)),
                "updated_at": events.last().map(|e| event::occurred_at(&e.envelope)),
                "timeline": timeline,
                "shipment": null,
                "cancel_reason": o.cancel_reason,
                "payment": {"attempts": o.attempts, "last_failure": null, "retry_by": null, "retry_pending": false},
            });
            same_bytes(OrderResponse::new(&o, events, trace_id.clone(), None), was);
        }
    }

    #[test]
    fn a_shipped_order_shows_each_parcel_whichever_version_recorded_it() {
        let parcel = |n: &str| omnisaga_proto::v2::Parcel {
            carrier: "omnisaga-post".into(),
            tracking_number: n.into(),
        };
        let v2 = Payload::OrderShippedV2(omnisaga_proto::v2::OrderShipped {
            order_id: "o-1".into(),
            parcels: vec![parcel("OSP1-1"), parcel("OSP1-2")],
        });
        let v1 = Payload::OrderShipped(omnisaga_proto::v1::OrderShipped {
            order_id: "o-1".into(),
            carrier: "omnisaga-post".into(),
            tracking_number: "OSP9".into(),
        });
        let with = |payload: Payload| {
            let mut shipped = stored("OrderShipped", "warehouse");
            shipped.envelope.payload = Some(payload);
            let body = serde_json::to_value(OrderResponse::new(
                &order(Some("c-1"), None),
                &[stored("OrderPlaced", "order"), shipped],
                None,
                None,
            ))
            .unwrap();
            body["shipment"].clone()
        };
        assert_eq!(
            with(v2),
            json!({"parcels": [
                {"carrier": "omnisaga-post", "tracking_number": "OSP1-1"},
                {"carrier": "omnisaga-post", "tracking_number": "OSP1-2"},
            ]})
        );
        assert_eq!(
            with(v1),
            json!({"parcels": [{"carrier": "omnisaga-post", "tracking_number": "OSP9"}]})
        );
    }
}
