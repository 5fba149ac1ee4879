//! `POST /webhooks/stripe`: the webhook inbox. The signature is checked first (a bad, expired or
//! missing one answers 400 and records nothing); then the delivery is recorded as
//! `GatewayEventReceived` (raw body and signature header) and only then answered 2xx. A second
//! delivery of the same event answers 200 and records nothing new. Then the reactor
//! (`commands::reactor`) translates it into events on our charges; if that fails, its background
//! pass over the log does it later.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use commands::gateway_event::{self, GatewayEventReceived};
use gateways::webhook::stripe::{self, SignatureError};
use ledger::event::Metadata;
use serde_json::json;

use super::body::body_bytes;
use super::error::ApiError;
use super::respond::{json_text, with_position};
use crate::state::AppState;

const SIGNATURE_HEADER: &str = "stripe-signature";
/// Largest delivery accepted: Stripe's events can be larger than a command's body (an invoice
/// with many lines); the raw body must still fit one event of the log (1 MiB as JSON).
pub const BODY_MAX_BYTES: usize = 512 * 1024;

fn refused(e: &SignatureError) -> ApiError {
    let code = match e {
        SignatureError::Missing => "signature_missing",
        SignatureError::Malformed => "signature_malformed",
        SignatureError::NoMatch => "signature_invalid",
        SignatureError::Expired => "signature_expired",
    };
    ApiError::invalid(code, None, e.to_string())
}

#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    request_body(content = String, description = "a Stripe event, signed (`Stripe-Signature`)", content_type = "application/json"),
    responses(
        (status = 200, description = "recorded (or recorded before: `duplicate`)"),
        (status = 400, description = "signature missing, malformed, not matching or expired; or not a Stripe event: nothing recorded"),
        (status = 503, description = "no webhook secret configured (`STRIPE_WEBHOOK_SECRET`), or the ledger is unavailable: Stripe delivers again"),
    )
)]
pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = delivered_body(body)?;
    if state.stripe_webhook_secrets.is_empty() {
        return Err(ApiError::webhooks_not_configured());
    }
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let now = state.clock.now();
    stripe::verify(
        signature,
        &body,
        &state.stripe_webhook_secrets,
        now.timestamp(),
        stripe::TOLERANCE_S,
    )
    .map_err(|e| refused(&e))?;
    let envelope = stripe::envelope(&body).ok_or_else(|| {
        ApiError::invalid(
            "event_invalid",
            None,
            "the body is not a Stripe event (id evt_…, type, created)",
        )
    })?;
    let raw = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::invalid("event_invalid", None, "the body is not UTF-8 JSON"))?;
    let mut kept = BTreeMap::new();
    if let Some(s) = signature {
        kept.insert(SIGNATURE_HEADER.to_string(), s.to_string());
    }
    let received = GatewayEventReceived {
        gateway: "stripe".into(),
        gateway_event_id: envelope.id,
        event_type: envelope.event_type,
        created: envelope.created,
        livemode: envelope.livemode,
        body: raw,
        headers: kept,
    };
    record_and_react(&state, &received).await
}

/// A delivery's raw bytes (its signature covers them exactly); too large is a 413.
pub(super) fn delivered_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    match body {
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::too_large(BODY_MAX_BYTES))
        }
        other => body_bytes(other),
    }
}

/// The inbox's common end for every gateway: `received` recorded once (a duplicate records
/// nothing), then reacted to, then answered 200 — whatever reacting does (the background pass
/// tries again).
pub(super) async fn record_and_react(
    state: &AppState,
    received: &GatewayEventReceived,
) -> Result<Response, ApiError> {
    let metadata = Metadata {
        actor: Some(format!("webhook:{}", received.gateway)),
        ..Metadata::default()
    };
    let now = state.clock.now();
    let recorded = gateway_event::record(state.store.as_ref(), received, now, &metadata).await?;
    if let Err(e) = state.reactor.react_to(recorded.event_id, received).await {
        tracing::warn!(event = %received.gateway_event_id, error = %e, "reacting to a webhook failed; the background pass will retry");
    }
    let answer = json!({
        "received": true,
        "id": received.gateway_event_id,
        "duplicate": recorded.duplicate,
    });
    let response = json_text(StatusCode::OK.as_u16(), answer.to_string());
    Ok(with_position(response, recorded.position))
}
