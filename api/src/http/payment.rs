//! `POST /payment/process`: the seed's charge endpoint.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use commands::charge::ChargeInput;
use ledger::ids::{ChargeId, CustomerId};
use ledger::money::{Currency, Money};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::charge_json::{self, ChargeObject};
use super::command::{self, Outcome};
use super::error::ApiError;
use crate::state::AppState;

/// Token charged when none is given, with the sandbox gateway only (the seed's example request
/// carries no payment method).
pub const SANDBOX_DEFAULT_PAYMENT_METHOD: &str = "tok_visa";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentProcess {
    /// Positive integer in the currency's minor unit (1000 = $10.00; 1000 = ¥1000).
    pub amount: i64,
    /// ISO-4217 code, e.g. `usd`.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// `cus_…`, recorded with the charge.
    pub customer_id: Option<String>,
    /// A gateway token (`tok_visa`, `pm_…`); never a card number.
    pub payment_method: Option<String>,
    pub description: Option<String>,
}

#[utoipa::path(
    post,
    path = "/payment/process",
    request_body = PaymentProcess,
    responses(
        (status = 200, description = "charge succeeded", body = ChargeObject),
        (status = 202, description = "gateway outcome not known yet; the charge is pending", body = ChargeObject),
        (status = 400, description = "invalid request; nothing recorded"),
        (status = 401, description = "missing or invalid API key"),
        (status = 402, description = "card declined (`card_error`, with the charge id)"),
        (status = 409, description = "same Idempotency-Key in flight"),
        (status = 422, description = "Idempotency-Key reused with another body"),
    ),
    security(("bearer" = []))
)]
pub async fn process(
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
        "/payment/process",
        &body,
        |ctx| async move {
            let req: PaymentProcess = parse_json(&ctx.body)?;
            let input = charge_input(&req, &ctx.state, ctx.draft.as_ref())?;
            let charges = &ctx.state.charges;
            let result = charges
                .charge(input, ctx.metadata, ctx.draft, &charge_json::render)
                .await?;
            let status = format!("{:?}", result.charge.status).to_lowercase();
            metrics::counter!("billing_charges_total", "status" => status).increment(1);
            Ok(Outcome {
                rendered: charge_json::render(&result.charge),
                position: result.position,
                idempotency_stored: result.idempotency_stored,
            })
        },
    )
    .await
}

fn charge_input(
    req: &PaymentProcess,
    state: &AppState,
    draft: Option<&commands::charge::IdempotencyDraft>,
) -> Result<ChargeInput, ApiError> {
    let currency = Currency::parse(&req.currency)
        .map_err(|e| ApiError::invalid("currency_invalid", Some("currency"), e.to_string()))?;
    let customer_id = req
        .customer_id
        .as_deref()
        .map(str::parse::<CustomerId>)
        .transpose()
        .map_err(|e| ApiError::invalid("parameter_invalid", Some("customer_id"), e.to_string()))?;
    let payment_method = match (&req.payment_method, state.gateways.default_gateway().name()) {
        (Some(pm), _) => pm.clone(),
        (None, "sandbox") => SANDBOX_DEFAULT_PAYMENT_METHOD.to_string(),
        (None, _) => {
            return Err(ApiError::invalid(
                "parameter_missing",
                Some("payment_method"),
                "payment_method is required",
            ));
        }
    };
    // Under an idempotency key the charge id is derived from it, so a retry — even from another
    // process, even after a crash — lands on the same charge stream and never charges twice.
    let charge_id = match draft {
        Some(d) => ChargeId::derived(&format!("{}:{}", d.api_key_id, d.key)),
        None => ChargeId::new(),
    };
    Ok(ChargeInput {
        charge_id,
        amount: Money::new(req.amount, currency),
        customer_id,
        payment_method,
        description: req.description.clone(),
        gateway: None,
        off_session: false,
        risk: commands::charge::fraud::RiskFacts::default(),
        fallbacks: Vec::new(),
        gateway_customer: None,
    })
}
