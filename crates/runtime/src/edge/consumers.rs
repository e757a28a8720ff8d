//! `GET /v1/admin/consumers`: each consumer's progress
//! ([`crate::messaging::progress`]) as an operator reads it.

use std::sync::Arc;

use axum::{extract::State, routing::get, Json, Router};

use crate::messaging::progress::{progress, PartitionProgress, Registered};

pub fn routes(consumers: Vec<Registered>) -> Router {
    Router::new()
        .route("/v1/admin/consumers", get(list))
        .with_state(Arc::new(consumers))
}

/// The service's consumers: each one's lag, per partition, as
/// `GET /v1/admin/consumers` lists them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ConsumerList {
    pub consumers: Vec<ConsumerProgress>,
}

/// One consumer group member: where it is on each partition.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ConsumerProgress {
    pub name: String,
    pub group: String,
    /// Records behind the partitions' ends, summed.
    pub lag: i64,
    /// Null before the consumer started.
    pub partitions: Option<Partitions>,
}

/// Each assigned partition's position, end and lag, or why the broker did
/// not say.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Partitions {
    Assigned(Vec<PartitionProgress>),
    Unknown {
        /// The broker did not answer.
        error: String,
    },
}

/// Consumer lag
///
/// Each consumer of this service: its group, and per partition the committed offset, the end and the lag.
#[utoipa::path(get, path = "/v1/admin/consumers", tag = "operations", security(("bearer" = ["admin"])),
    responses((status = 200, description = "the service's consumers", body = ConsumerList)))]
pub(crate) async fn list(State(consumers): State<Arc<Vec<Registered>>>) -> Json<ConsumerList> {
    let mut out = Vec::new();
    for c in consumers.iter() {
        let partitions = match c.slot.get() {
            None => None,
            Some(consumer) => Some(
                match tokio::task::spawn_blocking(move || progress(&consumer)).await {
                    Ok(Ok(p)) => Partitions::Assigned(p),
                    Ok(Err(e)) => Partitions::Unknown { error: e.to_string() },
                    Err(e) => Partitions::Unknown { error: e.to_string() },
                },
            ),
        };
        let lag: i64 = match &partitions {
            Some(Partitions::Assigned(p)) => p.iter().map(|p| p.lag).sum(),
            _ => 0,
        };
        out.push(ConsumerProgress {
            name: c.name.clone(),
            group: c.group.clone(),
            lag,
            partitions,
        });
    }
    Json(ConsumerList { consumers: out })
}
