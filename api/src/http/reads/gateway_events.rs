//! `GET /v1/gateway_events[/{id}]`: the webhook deliveries recorded, newest first, each with the
//! events on our charges it led to (`status`: `received`, or `applied` once it caused any). The
//! id is the recorded event's (the `causation_id` of what it caused); the raw body is in the log
//! (`GET /v1/events/{id}`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use commands::charge::Rendered;
use ledger::access::Scope;
use projections::gateway_events::GatewayEventDoc;
use serde_json::json;

use super::lists::{list_of, one_of};
use super::{ListQuery, PositionQuery, query};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::state::AppState;

const STATUSES: &[&str] = &["received", "applied"];

fn render(d: &GatewayEventDoc) -> Rendered {
    let status = if d.caused.is_empty() {
        "received"
    } else {
        "applied"
    };
    let body = json!({
        "id": d.id, "object": "gateway_event", "gateway": d.gateway,
        "gateway_event_id": d.gateway_event_id, "type": d.event_type, "created": d.created,
        "livemode": d.livemode, "position": d.position, "status": status, "caused": d.caused,
    });
    Rendered {
        status: 200,
        body: body.to_string(),
    }
}

#[utoipa::path(get, path = "/v1/gateway_events", params(ListQuery),
    responses((status = 200, description = "webhook deliveries recorded, newest first (status `received` or `applied`)")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    list_of::<GatewayEventDoc>(
        &state,
        &q,
        "gateway_events",
        "/v1/gateway_events",
        STATUSES,
        render,
    )
    .await
}

#[utoipa::path(get, path = "/v1/gateway_events/{id}", params(("id" = String, Path), PositionQuery),
    responses((status = 200, description = "the delivery and what it caused"), (status = 404, description = "no such delivery")),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<PositionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    one_of::<GatewayEventDoc>(&state, &q, "gateway_events", &id, "gateway event", render).await
}
