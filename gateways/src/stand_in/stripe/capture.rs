//! Authorizations in the Stripe stand-in: PaymentIntents made with `capture_method=manual` stop
//! at `requires_capture`; `POST /v1/payment_intents/{id}/capture` takes the money and
//! `…/cancel` releases it. Each PaymentIntent's charge is kept as a full Charge object, which
//! `expand[]=latest_charge` embeds, with Radar's `outcome.risk_level` by test card:
//! `…riskLevelElevated` is `elevated`, `…riskLevelHighest` is `highest` (authorized: Radar's
//! default block rule is off here, so the caller's own rules decide), anything else `normal`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Book, Shared, error, mutate, now};

/// Radar's risk level for a test token.
pub(super) fn risk_level(token: &str) -> &'static str {
    if token.ends_with("riskLevelElevated") {
        "elevated"
    } else if token.ends_with("riskLevelHighest") {
        "highest"
    } else {
        "normal"
    }
}

/// The Charge object of PaymentIntent `pi`, with every field of Stripe's.
pub(super) fn charge_object(id: &str, pi: &Value, risk: &str, captured: bool) -> Value {
    let amount = pi["amount"].as_i64().unwrap_or(0);
    let (score, seller) = match risk {
        "elevated" => (65, "Payment complete, with elevated risk."),
        "highest" => (85, "Payment complete, with the highest risk."),
        _ => (20, "Payment complete."),
    };
    let head = json!({
        "id": id, "object": "charge", "amount": amount,
        "amount_captured": if captured { amount } else { 0 }, "amount_refunded": 0,
        "application": null, "application_fee": null, "application_fee_amount": null,
        "balance_transaction": null,
        "billing_details": { "address": { "city": null, "country": null, "line1": null,
            "line2": null, "postal_code": null, "state": null },
            "email": null, "name": null, "phone": null, "tax_id": null },
        "calculated_statement_descriptor": "KANIZSA", "captured": captured, "created": now(),
        "currency": pi["currency"], "customer": pi["customer"], "description": pi["description"],
        "disputed": false, "failure_balance_transaction": null, "failure_code": null,
        "failure_message": null, "fraud_details": {}, "livemode": false,
        "metadata": pi["metadata"], "on_behalf_of": null,
    });
    let tail = json!({
        "outcome": { "advice_code": null, "network_advice_code": null,
            "network_decline_code": null, "network_status": "approved_by_network",
            "reason": null, "risk_level": risk, "risk_score": score,
            "seller_message": seller, "type": "authorized" },
        "paid": true, "payment_intent": pi["id"], "payment_method": pi["payment_method"],
        "payment_method_details": null, "receipt_email": null, "receipt_number": null,
        "receipt_url": null, "refunded": false,
        "refunds": { "object": "list", "data": [], "has_more": false,
            "url": format!("/v1/charges/{id}/refunds") },
        "review": null, "shipping": null, "source": null, "source_transfer": null,
        "statement_descriptor": null, "statement_descriptor_suffix": null,
        "status": "succeeded", "transfer_data": null, "transfer_group": null,
    });
    let mut charge = head;
    if let (Some(c), Value::Object(tail)) = (charge.as_object_mut(), tail) {
        c.extend(tail);
    }
    charge
}

/// Whether the request asks for `field` expanded (`expand[]=field`).
pub(super) fn wants(p: &HashMap<String, String>, field: &str) -> bool {
    p.iter()
        .any(|(k, v)| k.starts_with("expand[") && v == field)
}

/// `pi` with its `latest_charge` expanded.
pub(super) fn with_charge(b: &Book, mut pi: Value) -> Value {
    if let Some(charge) = pi["latest_charge"].as_str().and_then(|c| b.charges.get(c)) {
        pi["latest_charge"] = charge.clone();
    }
    pi
}

/// `pi` as answered: its `latest_charge` expanded when the request asked for it.
pub(super) fn expanded(b: &Book, p: &HashMap<String, String>, pi: Value) -> Value {
    if wants(p, "latest_charge") {
        with_charge(b, pi)
    } else {
        pi
    }
}

fn unexpected_state(message: String) -> (u16, Value) {
    error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "payment_intent_unexpected_state",
        &message,
        None,
    )
}

fn no_such_intent(id: &str) -> (u16, Value) {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "resource_missing",
        &format!("No such payment_intent: '{id}'"),
        Some("intent"),
    )
}

/// `POST /v1/payment_intents/{id}/capture`.
pub(super) async fn capture_intent(
    State(book): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/capture");
    mutate(&book, "POST", &path, &headers, &body, |b, p| {
        let Some(mut pi) = b.intents.get(&id).cloned() else {
            return no_such_intent(&id);
        };
        let status = pi["status"].as_str().unwrap_or_default().to_string();
        if status != "requires_capture" {
            return unexpected_state(format!(
                "This PaymentIntent could not be captured because it has a status of {status}. \
                 Only a PaymentIntent with one of the following statuses may be captured: \
                 requires_capture."
            ));
        }
        let capturable = pi["amount_capturable"].as_i64().unwrap_or(0);
        let amount = p
            .get("amount_to_capture")
            .and_then(|a| a.parse::<i64>().ok())
            .unwrap_or(capturable);
        if amount <= 0 || amount > capturable {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "amount_too_large",
                "The amount to capture is greater than the amount capturable.",
                Some("amount_to_capture"),
            );
        }
        pi["status"] = json!("succeeded");
        pi["amount_received"] = json!(amount);
        pi["amount_capturable"] = json!(0);
        if let Some(charge) = pi["latest_charge"]
            .as_str()
            .and_then(|c| b.charges.get_mut(c))
        {
            charge["captured"] = json!(true);
            charge["amount_captured"] = json!(amount);
        }
        b.succeeded_charges += 1;
        b.intents.insert(id.clone(), pi.clone());
        (200, expanded(b, p, pi))
    })
    .await
}

/// `POST /v1/payment_intents/{id}/cancel`.
pub(super) async fn cancel_intent(
    State(book): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/cancel");
    mutate(&book, "POST", &path, &headers, &body, |b, p| {
        let Some(mut pi) = b.intents.get(&id).cloned() else {
            return no_such_intent(&id);
        };
        let status = pi["status"].as_str().unwrap_or_default().to_string();
        let cancelable = [
            "requires_payment_method",
            "requires_capture",
            "requires_confirmation",
            "requires_action",
            "processing",
        ];
        if !cancelable.contains(&status.as_str()) {
            return unexpected_state(format!(
                "You cannot cancel this PaymentIntent because it has a status of {status}. \
                 Only a PaymentIntent with one of the following statuses may be canceled: {}.",
                cancelable.join(", ")
            ));
        }
        pi["status"] = json!("canceled");
        pi["amount_capturable"] = json!(0);
        pi["canceled_at"] = json!(now());
        pi["cancellation_reason"] = json!(p.get("cancellation_reason"));
        b.intents.insert(id.clone(), pi.clone());
        (200, expanded(b, p, pi))
    })
    .await
}
