//! Operations endpoints: `/health` and `/ready` (no key: probes must work before keys exist) and
//! `/metrics` (a `read` key, like every other endpoint: DESIGN.md "Security").

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use crate::state::AppState;
use ledger::access::Scope;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves requests.
    pub status: &'static str,
    pub version: &'static str,
    /// `postgres` or `sqlite`.
    pub store: &'static str,
    /// The default gateway (bare tokens): `sandbox`, `stripe` or `paypal`.
    pub gateway: &'static str,
    /// Every configured gateway, the default first.
    pub gateways: Vec<&'static str>,
    pub uptime_seconds: u64,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        store: state.store.backend(),
        gateway: state.gateways.default_gateway().name(),
        gateways: state.gateways.names(),
        uptime_seconds: state.started.elapsed().as_secs(),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `ok` or `unavailable`.
    pub store: &'static str,
    pub head_position: Option<i64>,
    /// `not_configured` (no `NATS_URL`), `connected` or `disconnected`. NATS down does not make
    /// the service unready: read models lag, nothing is lost.
    pub nats: &'static str,
    /// Events of the log the slowest projection has not applied yet (`head − checkpoint`).
    pub projection_lag: Option<i64>,
    /// Each projection's checkpoint (the last position it applied).
    pub projections: std::collections::BTreeMap<String, i64>,
}

/// Readiness: the event store answers (503 otherwise).
#[utoipa::path(get, path = "/ready", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let head = state.store.head().await;
    let ok = head.is_ok();
    if let Err(e) = &head {
        tracing::warn!(error = %e, "readiness: event store unavailable");
    }
    let head_position = head.ok().map(|h| h.position.0);
    let checkpoints = state.read.checkpoints_all().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "readiness: read-model checkpoints unavailable");
        Default::default()
    });
    let body = Ready {
        status: if ok { "ready" } else { "not_ready" },
        store: if ok { "ok" } else { "unavailable" },
        head_position,
        nats: state
            .nats
            .as_ref()
            .map_or("not_configured", projections::relay::NatsStatus::as_str),
        projection_lag: head_position.and_then(|h| {
            checkpoints
                .values()
                .min()
                .map(|slowest| h.saturating_sub(*slowest))
        }),
        projections: checkpoints,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")), security(("bearer" = [])))]
pub async fn metrics(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let stats = state.store.writer_stats();
    metrics::gauge!("billing_append_batches").set(stats.batches as f64);
    metrics::gauge!("billing_append_requests").set(stats.requests as f64);
    metrics::gauge!("billing_appended_events").set(stats.events as f64);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response())
}
