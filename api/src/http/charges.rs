//! `POST /v1/charges`: charge a customer with one of its payment methods (the default unless
//! `payment_method` names another). Same two-phase charge as `POST /payment/process`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use commands::charge::ChargeInput;
use commands::charge::failover::Fallback;
use commands::charge::fraud::RiskFacts;
use ledger::ids::{ChargeId, CustomerId, PaymentMethodId};
use ledger::money::{Currency, Money};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::charge_json::{self, ChargeObject};
use super::command::{self, Outcome};
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCharge {
    /// `cus_…`
    pub customer_id: String,
    /// Positive integer in the currency's minor unit.
    pub amount: i64,
    /// ISO-4217 code.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// `pm_…` of one of the customer's payment methods (default: its default method).
    pub payment_method: Option<String>,
    pub description: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/charges",
    request_body = CreateCharge,
    responses(
        (status = 200, description = "charge succeeded", body = ChargeObject),
        (status = 202, description = "gateway outcome not known yet; the charge is pending", body = ChargeObject),
        (status = 400, description = "invalid request, or the customer has no usable payment method; nothing recorded"),
        (status = 402, description = "card declined (`card_error`, with the charge id)"),
        (status = 404, description = "no such customer or payment method"),
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
        "/v1/charges",
        &body,
        |ctx| async move {
            let req: CreateCharge = parse_json(&ctx.body)?;
            let currency = Currency::parse(&req.currency).map_err(|e| {
                ApiError::invalid("currency_invalid", Some("currency"), e.to_string())
            })?;
            let customer_id: CustomerId = req
                .customer_id
                .parse()
                .map_err(|_| ApiError::not_found("no such customer"))?;
            let customer = ctx.state.customers.load(customer_id).await?.customer;
            let method = match &req.payment_method {
                Some(pm) => {
                    let id: PaymentMethodId = pm.parse().map_err(|_| {
                        ApiError::not_found("no such payment method on this customer")
                    })?;
                    customer.payment_method(id).ok_or_else(|| {
                        ApiError::not_found("no such payment method on this customer")
                    })?
                }
                None => customer.default_method().ok_or_else(|| {
                    ApiError::invalid(
                        "payment_method_missing",
                        Some("payment_method"),
                        "the customer has no default payment method",
                    )
                })?,
            };
            let charge_id = match &ctx.draft {
                Some(d) => ChargeId::derived(&format!("{}:{}", d.api_key_id, d.key)),
                None => ChargeId::new(),
            };
            let input = ChargeInput {
                charge_id,
                amount: Money::new(req.amount, currency),
                customer_id: Some(customer.id),
                payment_method: method.token.clone(),
                description: req.description,
                gateway: Some(method.gateway.as_str().to_string()),
                off_session: false,
                gateway_customer: method.gateway_customer.clone(),
                // The customer's methods at other gateways, newest first, for failover.
                fallbacks: customer
                    .payment_methods
                    .iter()
                    .rev()
                    .filter(|m| m.gateway != method.gateway)
                    .map(|m| Fallback {
                        gateway: m.gateway.as_str().to_string(),
                        payment_method: m.token.clone(),
                    })
                    .collect(),
                risk: RiskFacts {
                    billing_country: customer.tax_location.as_ref().map(|l| l.country.clone()),
                    method_country: method.country.clone(),
                    ..RiskFacts::default()
                },
            };
            let result = ctx
                .state
                .charges
                .charge(input, ctx.metadata, ctx.draft, &charge_json::render)
                .await?;
            Ok(Outcome {
                rendered: charge_json::render(&result.charge),
                position: result.position,
                idempotency_stored: result.idempotency_stored,
            })
        },
    )
    .await
}
