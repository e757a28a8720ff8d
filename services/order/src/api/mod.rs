//! The order HTTP API (`/v1`): catalog, place an order, list one's orders,
//! show an order with its timeline, cancel it, retry its payment. Every
//! call needs a token (`omnisaga_runtime::auth`) holding the scope its route
//! declares (`routes` below); a customer's is scoped to
//! their own orders: another's order is no such order. Every error is the
//! runtime's JSON envelope.
//!
//! | route | served by |
//! |---|---|
//! | `GET /v1/catalog` | `catalog.rs` |
//! | `POST /v1/orders` | `orders.rs` (`place_order`) |
//! | `GET /v1/orders` | `orders.rs` (`list_orders`) |
//! | `GET /v1/orders/{id}` | `orders.rs` (`get_order`) |
//! | `GET /v1/orders/{id}/events` | `events/order.rs`: one order, live (Server-Sent Events) |
//! | `GET /v1/orders/events` | `events/customer.rs`: all of the caller's, live |
//! | `POST /v1/orders/{id}/payment-retry` | `orders.rs` (`retry_payment`) |
//! | `POST /v1/orders/{id}/cancel` | `orders.rs` (`cancel_order`) |
//! | `GET /v1/internal/orders/{id}/payment-methods/{attempt}` | `orders.rs` (`payment_method`): the payment service's, the topics do not carry it |
//! | `POST /v1/admin/reconcile` | `reconcile.rs`: its part of `omnisaga reconcile` |
//! | `GET /v1/admin/orders` | `admin_orders.rs` (`find_orders`): every customer's, filtered, stuck or not |
//! | `GET /v1/admin/orders/{id}` | `admin_orders.rs` (`admin_order`): one, with its deadlines |
//!
//! Beside them, `dto.rs` holds the request and response bodies,
//! `validation.rs` the checks of a request and the problem list it answers
//! with, and `idempotency.rs` the `Idempotency-Key` header.

mod admin_orders;
mod catalog;
mod dto;
pub mod events;
mod idempotency;
mod orders;
mod reconcile;
mod validation;

use std::sync::Arc;

use axum::{
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{
    batch,
    openapi::{self, About},
    routes::Routes,
    work::OutboxWaker,
};
use sqlx::PgPool;
use utoipa::OpenApi;

use crate::{application::Orders, config::Config};

pub use dto::{AddressDto, ChannelDto, ItemRequest, PlaceOrderRequest, RetryRequest};

/// The checks `POST /v1/orders` makes before it reads the database, in the
/// handler's order, for the fuzz targets in `tools/fuzz`; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::{idempotency::request_hash, orders::priced_items, validation::validate_within};
}

/// The order API's document, from its handlers and the runtime's.
#[derive(OpenApi)]
#[openapi(paths(
    catalog::catalog,
    orders::place_order,
    orders::list_orders,
    orders::get_order,
    events::order::order_events,
    events::customer::customer_events,
    orders::retry_payment,
    orders::cancel_order,
    orders::payment_method,
    reconcile::reconcile,
    admin_orders::find_orders,
    admin_orders::admin_order,
))]
struct ApiDoc;

/// The whole OpenAPI document of the order service.
pub fn document() -> serde_json::Value {
    openapi::document(
        &About {
            service: "order",
            description: "Place, follow, retry payment for and cancel orders. The saga's owner.",
            port: 8080,
        },
        ApiDoc::openapi(),
        vec![("/v1/catalog/batch", batch::path_item::<catalog::CatalogImport>())],
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_the_one_the_code_generates() {
        omnisaga_runtime::testing::openapi::assert_checked_in("order", &super::document());
    }
}

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every route handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub waker: OutboxWaker,
    pub config: Arc<Config>,
    /// Client for the warehouse's stock levels.
    pub http: reqwest::Client,
    pub orders: Orders,
    /// The live streams' fan-out, poller switch and bounds.
    pub feed: Arc<events::feed::Feed>,
}

/// The API's routes over `state`, each with its scope (on the listener the
/// scope decides: the internal route and the batch import on the admin
/// one), with the body limit.
pub fn routes(state: ApiState) -> Routes {
    Routes::new()
        .route("/v1/catalog", Scope::OrdersRead, get(catalog::catalog))
        .route("/v1/orders", Scope::OrdersWrite, post(orders::place_order))
        .route("/v1/orders", Scope::OrdersRead, get(orders::list_orders))
        .route("/v1/orders/{id}", Scope::OrdersRead, get(orders::get_order))
        .route(
            "/v1/orders/events",
            Scope::OrdersRead,
            get(events::customer::customer_events),
        )
        .route(
            "/v1/orders/{id}/events",
            Scope::OrdersRead,
            get(events::order::order_events),
        )
        .route(
            "/v1/orders/{id}/payment-retry",
            Scope::OrdersWrite,
            post(orders::retry_payment),
        )
        .route(
            "/v1/orders/{id}/cancel",
            Scope::OrdersWrite,
            post(orders::cancel_order),
        )
        .route(
            "/v1/internal/orders/{id}/payment-methods/{attempt}",
            Scope::PaymentMethodsRead,
            get(orders::payment_method),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // After the limit: a request that lists shipped orders (which the
        // order service ignores) is refused by its bound, as the other
        // services' are, not by the size of its body.
        .route("/v1/admin/orders", Scope::Admin, get(admin_orders::find_orders))
        .route(
            "/v1/admin/orders/{id}",
            Scope::Admin,
            get(admin_orders::admin_order),
        )
        .route(
            "/v1/admin/reconcile",
            Scope::ReconcileRead,
            post(reconcile::reconcile),
        )
        .with_state(state.clone())
        .merge(batch::routes(
            "/v1/catalog/batch",
            state.pool,
            catalog::CatalogImport,
        ))
}
