//! `POST /v1/refunds`: refund a charge, in part or in full, never beyond what was captured.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use commands::charge::refund::RefundStatus;
use commands::charge::{Charge, RefundInput, Rendered};
use ledger::ids::{ChargeId, RefundId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::command::{self, Outcome};
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// `ch_…`
    pub charge_id: String,
    /// Minor units; default: what is left to refund.
    pub amount: Option<i64>,
    /// `duplicate`, `fraudulent` or `requested_by_customer`.
    pub reason: Option<String>,
}

/// The refund object (Stripe's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct RefundObject {
    /// `re_…`
    pub id: String,
    /// Always `refund`.
    pub object: &'static str,
    pub amount: i64,
    pub currency: String,
    pub charge: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub failure_reason: Option<String>,
    pub gateway_refund_id: Option<String>,
    /// RFC 3339.
    pub created: String,
}

/// 200 for a recorded outcome (succeeded or failed: a failed refund is a fact about the refund,
/// not an error of the request), 202 while the gateway's answer is unknown.
pub fn render(charge: &Charge, refund_id: RefundId) -> Rendered {
    let Some(r) = charge.refund(refund_id) else {
        return Rendered {
            status: 404,
            body: ApiError::not_found("no such refund").body().to_string(),
        };
    };
    let object = RefundObject {
        id: r.id.to_string(),
        object: "refund",
        amount: r.amount.amount_minor(),
        currency: r.amount.currency().code().to_string(),
        charge: charge.id.to_string(),
        status: match r.status {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
        .to_string(),
        reason: r.reason.clone(),
        failure_reason: r.failure_reason.clone(),
        gateway_refund_id: r.gateway_refund_id.clone(),
        created: r.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    let status = if r.status == RefundStatus::Pending {
        202
    } else {
        200
    };
    Rendered {
        status,
        body: serde_json::to_string(&object).unwrap_or_default(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/refunds",
    request_body = CreateRefund,
    responses(
        (status = 200, description = "the refund (succeeded or failed)", body = RefundObject),
        (status = 202, description = "gateway outcome not known yet; the amount stays reserved", body = RefundObject),
        (status = 400, description = "not refundable, amount too large, bad input; nothing recorded"),
        (status = 404, description = "no such charge"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    command::run(
        &state,
        &caller,
        &headers,
        "/v1/refunds",
        &body,
        |ctx| async move {
            let req: CreateRefund = parse_json(&ctx.body)?;
            let charge_id: ChargeId = req
                .charge_id
                .parse()
                .map_err(|_| ApiError::not_found("no such charge"))?;
            // Under an idempotency key the refund id is derived from it (and the charge), so a
            // retry finds its refund; refunds of two charges never share an id.
            let refund_id = match &ctx.draft {
                Some(d) => RefundId::derived(&format!("{}:{}:{charge_id}", d.api_key_id, d.key)),
                None => RefundId::new(),
            };
            let input = RefundInput {
                charge_id,
                refund_id,
                amount: req.amount,
                reason: req.reason,
            };
            let done = ctx
                .state
                .charges
                .refund(input, ctx.metadata, ctx.draft, &render)
                .await?;
            Ok(Outcome {
                rendered: render(&done.charge, done.refund_id),
                position: done.position,
                idempotency_stored: done.idempotency_stored,
            })
        },
    )
    .await
}
