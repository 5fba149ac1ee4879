//! `POST /webhooks/paypal`: the PayPal side of the webhook inbox. PayPal signs with a
//! certificate and verifies for us: the delivery's `PAYPAL-*` headers, our webhook's id
//! (`PAYPAL_WEBHOOK_ID`) and the exact body go to its verify-webhook-signature call. `FAILURE` (or
//! missing headers) answers 400 and records nothing; verified, the delivery is recorded as
//! `GatewayEventReceived` (once per `WH-…` id) before the 200, and the reactor translates it. If
//! PayPal cannot be asked, the answer is 503 and PayPal delivers again.
//!
//! What reaches PayPal is bounded: a certificate not on `paypal.com` is refused first, a
//! delivery recorded already is answered as a duplicate without asking again, and at most
//! [`VERIFICATIONS_IN_FLIGHT`] verifications run at once (beyond: 503).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use commands::gateway_event::GatewayEventReceived;
use gateways::paypal::webhook::PaypalSignatureHeaders;
use serde_json::Value;

use super::error::ApiError;
use crate::state::AppState;

/// PayPal verification calls in flight at once, per process.
pub const VERIFICATIONS_IN_FLIGHT: usize = 8;

const HEADERS: [&str; 5] = [
    "paypal-auth-algo",
    "paypal-cert-url",
    "paypal-transmission-id",
    "paypal-transmission-sig",
    "paypal-transmission-time",
];

/// `id`, `event_type` and `create_time` (as unix seconds) of a PayPal event.
fn envelope(body: &[u8]) -> Option<(String, String, i64)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let id = v["id"].as_str().filter(|s| valid(s))?.to_string();
    let kind = v["event_type"].as_str().filter(|s| valid(s))?.to_string();
    let created = chrono::DateTime::parse_from_rfc3339(v["create_time"].as_str()?)
        .ok()?
        .timestamp();
    Some((id, kind, created))
}

/// `https://<host>.paypal.com/…` (or `paypal.com` itself), nothing else.
fn paypal_cert_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.contains(['@', ':'])
        && (host.eq_ignore_ascii_case("paypal.com")
            || host.to_ascii_lowercase().ends_with(".paypal.com"))
}

fn valid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic())
}

#[utoipa::path(
    post,
    path = "/webhooks/paypal",
    request_body(content = String, description = "a PayPal webhook event with its PAYPAL-* headers", content_type = "application/json"),
    responses(
        (status = 200, description = "verified and recorded (or recorded before: `duplicate`)"),
        (status = 400, description = "headers missing, signature refused by PayPal, or not a PayPal event: nothing recorded"),
        (status = 503, description = "PayPal webhooks not configured (`PAYPAL_WEBHOOK_ID` and PayPal credentials), PayPal could not be asked, or the ledger is unavailable: PayPal delivers again"),
    )
)]
pub async fn paypal(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = super::webhooks::delivered_body(body)?;
    let (Some(paypal), Some(webhook_id)) = (&state.paypal, &state.paypal_webhook_id) else {
        return Err(ApiError::paypal_webhooks_not_configured());
    };
    let lookup = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = PaypalSignatureHeaders::from_lookup(lookup).ok_or_else(|| {
        ApiError::invalid(
            "signature_missing",
            None,
            "the PAYPAL-AUTH-ALGO, -CERT-URL, -TRANSMISSION-ID, -TRANSMISSION-SIG and -TRANSMISSION-TIME headers are required",
        )
    })?;
    // PayPal signs with a certificate it serves itself: a delivery naming any other is forged,
    // and is refused without asking PayPal (no outbound call per forged request).
    if !paypal_cert_url(&signature.cert_url) {
        return Err(ApiError::invalid(
            "signature_invalid",
            None,
            "PAYPAL-CERT-URL is not a paypal.com certificate; nothing was recorded",
        ));
    }
    let (id, event_type, created) = envelope(&body).ok_or_else(|| {
        ApiError::invalid(
            "event_invalid",
            None,
            "the body is not a PayPal event (id, event_type, create_time)",
        )
    })?;
    // Delivered again (PayPal retries until it sees a 2xx): answered from the record.
    // (Unverified: no position is given away.)
    if commands::gateway_event::recorded(state.store.as_ref(), "paypal", &id)
        .await?
        .is_some()
    {
        let answer = serde_json::json!({"received": true, "id": id, "duplicate": true});
        return Ok(super::respond::json_text(
            StatusCode::OK.as_u16(),
            answer.to_string(),
        ));
    }
    let Ok(permit) = state.paypal_verifications.try_acquire() else {
        return Err(ApiError::gateway_unavailable(
            "too many PayPal verifications in flight; nothing was recorded (PayPal delivers again)",
        ));
    };
    match paypal
        .verify_webhook_raw(webhook_id, &signature, &body)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::invalid(
                "signature_invalid",
                None,
                "PayPal did not verify this delivery's signature; nothing was recorded",
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "PayPal webhook verification could not be asked");
            return Err(ApiError::gateway_unavailable(
                "PayPal could not verify this delivery now; nothing was recorded (PayPal delivers again)",
            ));
        }
    }
    drop(permit);
    let raw = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::invalid("event_invalid", None, "the body is not UTF-8 JSON"))?;
    let kept: BTreeMap<String, String> = HEADERS
        .iter()
        .filter_map(|h| lookup(h).map(|v| ((*h).to_string(), v.to_string())))
        .collect();
    let received = GatewayEventReceived {
        gateway: "paypal".into(),
        gateway_event_id: id,
        event_type,
        created,
        livemode: paypal.config().api_base.trim_end_matches('/')
            == gateways::paypal::DEFAULT_API_BASE,
        body: raw,
        headers: kept,
    };
    super::webhooks::record_and_react(&state, &received).await
}

#[cfg(test)]
mod tests {
    use super::paypal_cert_url;

    #[test]
    fn only_paypal_certificates_are_sent_to_paypal_for_verification() {
        for ok in [
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
            "https://API.PAYPAL.COM/x",
        ] {
            assert!(paypal_cert_url(ok), "{ok}");
        }
        for bad in [
            "http://api.paypal.com/certs/1",
            "https://paypal.com.evil.example/certs/1",
            "https://evilpaypal.com/certs/1",
            "https://api.paypal.com@evil.example/certs/1",
            "https://api.paypal.com:8443/certs/1",
            "",
        ] {
            assert!(!paypal_cert_url(bad), "{bad}");
        }
    }
}
