//! Reviews of charges held by fraud screening (`in_review`): `GET /v1/reviews` lists the open
//! ones; `POST /v1/reviews/{id}/approve` charges the payment, `/reject` fails it with
//! `review_rejected` (the gateway never called). A charge held on the gateway's risk level is
//! an authorization: approving captures it, rejecting cancels it. A review's id is its charge's
//! id.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use commands::charge::{Charge, ChargeStatus, Rendered};
use ledger::access::Scope;
use ledger::ids::ChargeId;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::body_bytes;
use super::command::{self, Outcome};
use super::error::ApiError;
use super::reads::{ListQuery, query};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewObject {
    /// The held charge's id (`ch_…`).
    pub id: String,
    /// Always `review`.
    pub object: &'static str,
    pub charge: String,
    /// Whether it still waits for a decision.
    pub open: bool,
    /// `rule` while open; `approved` or `rejected` once closed.
    pub reason: &'static str,
    /// The fraud rules that fired (`gateway_risk_elevated`: the gateway's risk level).
    pub rules: Vec<String>,
    /// The gateway's risk level, when the charge was authorized first: then approving captures
    /// the authorization and rejecting cancels it.
    pub risk_level: Option<String>,
    pub amount: i64,
    pub currency: String,
    pub customer: Option<String>,
    pub payment_method: String,
    /// The charge's status now: `in_review`, then `succeeded`, `failed` or `pending`.
    pub charge_status: &'static str,
    pub failure_code: Option<String>,
    /// RFC 3339.
    pub created: String,
}

pub fn render(c: &Charge) -> Rendered {
    let review = ReviewObject {
        id: c.id.to_string(),
        object: "review",
        charge: c.id.to_string(),
        open: c.status == ChargeStatus::InReview && c.review_closed.is_none(),
        reason: match c.review_closed {
            None => "rule",
            Some(true) => "approved",
            Some(false) => "rejected",
        },
        rules: c
            .fraud
            .as_ref()
            .map(|a| a.rules.clone())
            .unwrap_or_default(),
        risk_level: c.risk_level.clone(),
        amount: c.amount.amount_minor(),
        currency: c.amount.currency().code().to_string(),
        customer: c.customer_id.map(|id| id.to_string()),
        payment_method: c.payment_method.clone(),
        charge_status: c.status.as_str(),
        failure_code: c.failure_code.clone(),
        created: c.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    Rendered {
        status: 200,
        body: serde_json::to_string(&review).unwrap_or_default(),
    }
}

#[utoipa::path(get, path = "/v1/reviews", params(ListQuery),
    responses((status = 200, description = "open reviews (charges held by fraud screening), newest first")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let mut q = query(q)?;
    if q.status.is_some() {
        return Err(ApiError::invalid(
            "parameter_unknown",
            Some("status"),
            "reviews are listed while open; no status filter",
        ));
    }
    q.status = Some(ChargeStatus::InReview.as_str().to_string());
    super::reads::lists::list_of::<Charge>(
        &state,
        &q,
        "charges",
        "/v1/reviews",
        &[ChargeStatus::InReview.as_str()],
        render,
    )
    .await
}

#[utoipa::path(post, path = "/v1/reviews/{id}/approve", params(("id" = String, Path)),
    responses((status = 200, body = ReviewObject, description = "approved: the charge went to the gateway"),
        (status = 404, description = "no such charge"), (status = 409, description = "not in review, or rejected")),
    security(("bearer" = [])))]
pub async fn approve(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    close(state, caller, headers, id, body, true).await
}

#[utoipa::path(post, path = "/v1/reviews/{id}/reject", params(("id" = String, Path)),
    responses((status = 200, body = ReviewObject, description = "rejected: the charge failed, nothing charged"),
        (status = 404, description = "no such charge"), (status = 409, description = "not in review, or approved")),
    security(("bearer" = [])))]
pub async fn reject(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    close(state, caller, headers, id, body, false).await
}

async fn close(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    body: Result<Bytes, BytesRejection>,
    approved: bool,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let charge_id: ChargeId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such review"))?;
    // No parameters: an empty body or `{}`; anything else is refused before anything happens.
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body) {
            Ok(fields) if fields.is_empty() => {}
            Ok(fields) => {
                let name = fields.keys().next().cloned().unwrap_or_default();
                return Err(ApiError::invalid(
                    "parameter_unknown",
                    None,
                    format!("this endpoint takes no parameters ({name:?} given)"),
                ));
            }
            Err(_) => {
                return Err(ApiError::invalid(
                    "body_invalid",
                    None,
                    "the body must be empty or a JSON object",
                ));
            }
        }
    }
    let verb = if approved { "approve" } else { "reject" };
    let path = format!("/v1/reviews/{charge_id}/{verb}");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let done = ctx
            .state
            .charges
            .close_review(charge_id, approved, ctx.metadata, ctx.draft, &render)
            .await?;
        Ok(Outcome {
            rendered: render(&done.charge),
            position: done.position,
            idempotency_stored: done.idempotency_stored,
        })
    })
    .await
}
