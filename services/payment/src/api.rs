//! Payment's HTTP API: the provider simulator's outage switch (for demos and
//! fault tests), a payment's state for support, and its part of
//! reconciliation (`reconcile.rs`); operators' only (`admin`).

use std::sync::{atomic::Ordering, Arc};

use axum::{
    extract::{Path, State},
    routing::{get, post, put},
    Json,
};
use omnisaga_auth::Scope;
use omnisaga_runtime::{
    http::{ApiError, ApiJson, ErrorBody},
    openapi::{self, About},
    reconcile::{ReconcileReport, ReconcileRequest},
    routes::Routes,
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::{provider::Provider, store};

#[derive(Clone)]
struct ApiState {
    pool: PgPool,
    provider: Arc<Provider>,
}

pub fn routes(pool: PgPool, provider: Arc<Provider>) -> Routes {
    Routes::new()
        .route(
            "/v1/admin/provider",
            Scope::Admin,
            put(set_provider).get(get_provider),
        )
        .route("/v1/payments/{order_id}", Scope::Admin, get(payment))
        .route("/v1/admin/reconcile", Scope::ReconcileRead, post(reconcile))
        .with_state(ApiState { pool, provider })
}

/// Payment's API document, from the handlers below and the runtime's.
#[derive(OpenApi)]
#[openapi(paths(get_provider, set_provider, payment, reconcile))]
struct ApiDoc;

/// The whole OpenAPI document of the payment service.
pub fn document() -> serde_json::Value {
    openapi::document(
        &About {
            service: "payment",
            description: "Payments are driven by events; this API is for operators.",
            port: 8081,
        },
        ApiDoc::openapi(),
        vec![],
    )
}

/// The provider simulator's outage switch.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProviderSwitch {
    /// True: every call answers "provider unavailable" (retryable).
    outage: bool,
}

/// Switch the provider off or on
///
/// Sets the payment provider simulator's outage switch: while it is on, every authorisation fails as retryable and orders wait in AWAITING_PAYMENT (for demos and fault tests).
#[utoipa::path(put, path = "/v1/admin/provider", tag = "payments", request_body = ProviderSwitch,
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "the switch as it is now", body = ProviderSwitch)))]
async fn set_provider(
    State(s): State<ApiState>,
    ApiJson(body): ApiJson<ProviderSwitch>,
) -> Json<ProviderSwitch> {
    s.provider.outage.store(body.outage, Ordering::Relaxed);
    tracing::info!(outage = body.outage, "provider outage switch set");
    Json(body)
}

/// The provider's outage switch
#[utoipa::path(get, path = "/v1/admin/provider", tag = "payments",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "the switch", body = ProviderSwitch)))]
async fn get_provider(State(s): State<ApiState>) -> Json<ProviderSwitch> {
    Json(ProviderSwitch {
        outage: s.provider.outage.load(Ordering::Relaxed),
    })
}

/// An amount in integer minor units.
#[derive(Serialize, ToSchema)]
struct Money {
    /// Integer minor units (cents).
    minor_units: i64,
    /// ISO 4217.
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: String,
}

/// An order's payment as payment's view holds it.
#[derive(Serialize, ToSchema)]
struct PaymentView {
    order_id: Uuid,
    /// AUTHORIZED (an attempt was approved and stands), FAILED (none approved yet), CANCELLED (the order was cancelled before any was approved) or VOIDED (the authorisation was released).
    #[schema(pattern = "^(AUTHORIZED|FAILED|CANCELLED|VOIDED)$")]
    status: String,
    /// Attempts made so far.
    attempts: i32,
    amount: Money,
}

/// An order's payment
///
/// The payment of an order: its status, attempts and amount. No row until the provider answered the first attempt.
#[utoipa::path(get, path = "/v1/payments/{order_id}", tag = "payments",
    params(("order_id" = Uuid, Path, description = "the order's id")),
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "the payment", body = PaymentView),
        (status = 404, description = "not_found: no payment for this order (yet)", body = ErrorBody),
    ))]
async fn payment(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<PaymentView>, ApiError> {
    let order_id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such payment"))?;
    let row = store::view(&s.pool, order_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such payment"))?;
    Ok(Json(PaymentView {
        order_id,
        status: row.status,
        attempts: row.attempts,
        amount: Money {
            minor_units: row.amount_minor,
            currency: row.currency,
        },
    }))
}

/// Reconcile the payment service's invariants
///
/// Checks, in one read-only snapshot, that every outbox row written before `until` is published; that for every order the provider answered in `[since, until)` its ledger holds money for exactly the authorisations the payment stream holds, one at most (a second approval is a double charge); and that every order of `shipped` holds exactly one standing authorisation of its total, which the provider holds. Writes nothing.
#[utoipa::path(post, path = "/v1/admin/reconcile", tag = "operations", request_body = ReconcileRequest,
    security(("bearer" = ["reconcile:read"])),
    responses(
        (status = 200, description = "the counterexamples found", body = ReconcileReport),
        (status = 422, description = "validation_failed: the window is not in order, in the future or longer than 7 days, or more than 5000 shipped orders", body = ErrorBody),
    ))]
async fn reconcile(
    State(s): State<ApiState>,
    ApiJson(req): ApiJson<ReconcileRequest>,
) -> Result<Json<ReconcileReport>, ApiError> {
    req.validate()?;
    Ok(Json(crate::reconcile::check(&s.pool, &req).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_checked_in_openapi_document_is_the_one_the_code_generates() {
        omnisaga_runtime::testing::openapi::assert_checked_in("payment", &super::document());
    }
}
