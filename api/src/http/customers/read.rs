//! `GET /v1/customers/{id}` and `GET /v1/customers/{id}/export` (GDPR): the customer from its
//! own stream, with its personal data opened (`null` once erased). The read models of
//! "Projections" will serve lists; this is the one customer, strongly consistent.

use axum::extract::{Path, State};
use axum::response::Response;
use ledger::access::Scope;

use super::customer_id;
use super::object::{CustomerObject, render};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::respond::json_text;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/customers/{id}",
    params(("id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "the customer", body = CustomerObject),
        (status = 404, description = "no such customer"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let view = state.customers.load(customer_id(&id)?).await?;
    let r = render(&view.customer, view.personal.as_ref());
    Ok(json_text(r.status, r.body))
}

#[utoipa::path(
    get,
    path = "/v1/customers/{id}/export",
    params(("id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "everything held about the person (GDPR access): the customer with its personal data, payment methods and balance, and the types and times of the events of its stream"),
        (status = 404, description = "no such customer"),
    ),
    security(("bearer" = []))
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Admin)?;
    let id = customer_id(&id)?;
    let view = state.customers.load(id).await?;
    let stream = ledger::event::StreamId::of("customer", &id)
        .map_err(|e| ApiError::internal("customer stream", &e))?;
    let history: Vec<serde_json::Value> = state
        .store
        .read_stream(&stream)
        .await?
        .iter()
        .map(|e| {
            serde_json::json!({
                "type": e.event_type,
                "position": e.position.0,
                "occurred_at": e.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        })
        .collect();
    let customer: serde_json::Value =
        serde_json::from_str(&render(&view.customer, view.personal.as_ref()).body)
            .unwrap_or_default();
    let body = serde_json::json!({
        "object": "customer_export",
        "customer": customer,
        "events": history,
    });
    Ok(json_text(200, body.to_string()))
}
