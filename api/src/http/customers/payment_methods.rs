//! `POST /v1/customers/{id}/payment_methods` (attach a gateway token),
//! `DELETE /v1/customers/{id}/payment_methods/{pm}`, and
//! `POST /v1/customers/{id}/balance_transactions` (Stripe's customer balance adjustments).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use commands::CommandError;
use commands::customer::{Customer, CustomerCommand, GatewayKind, check_token};
use gateways::{GatewayError, LinkOutcome, LinkRequest};
use ledger::ids::{CustomerId, PaymentMethodId};
use serde::Deserialize;
use utoipa::ToSchema;

use super::customer_id;
use super::object::{CustomerObject, render};
use crate::http::auth::Caller;
use crate::http::body::{body_bytes, parse_json};
use crate::http::command::{self, Ctx, Outcome};
use crate::http::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachPaymentMethod {
    #[schema(value_type = crate::http::openapi::Gateway)]
    pub gateway: GatewayKind,
    /// The gateway's token (`tok_…`, `pm_…`, a PayPal vault id). Never a card number.
    pub token: String,
    /// Make it the default (the first method always becomes the default).
    pub set_default: Option<bool>,
    /// Where the method was issued (ISO 3166-1 alpha-2, as the gateway reports it): fraud
    /// screening compares it with the customer's billing country.
    pub country: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/customers/{id}/payment_methods",
    request_body = AttachPaymentMethod,
    params(("id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "the customer with the method attached (attaching the same token again changes nothing)", body = CustomerObject),
        (status = 400, description = "invalid token, or a card number"),
        (status = 404, description = "no such customer"),
    ),
    security(("bearer" = []))
)]
pub async fn attach(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id = customer_id(&id)?;
    let path = format!("/v1/customers/{id}/payment_methods");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let req: AttachPaymentMethod = parse_json(&ctx.body)?;
        check_token(&req.token).map_err(CommandError::from)?;
        let linked = link(&ctx.state, id, req.gateway, &req.token).await?;
        let command = CustomerCommand::AttachPaymentMethod {
            gateway: req.gateway,
            token: req.token,
            set_default: req.set_default.unwrap_or(false),
            country: req.country.or(linked.country),
            gateway_customer: linked.gateway_customer,
        };
        execute(ctx, id, command).await
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/customers/{id}/payment_methods/{pm}",
    params(
        ("id" = String, Path, description = "`cus_…`"),
        ("pm" = String, Path, description = "`pm_…`"),
    ),
    responses(
        (status = 200, description = "the customer without the method (a detached default leaves no default)", body = CustomerObject),
        (status = 404, description = "no such customer or payment method"),
    ),
    security(("bearer" = []))
)]
pub async fn detach(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, pm)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id = customer_id(&id)?;
    let pm: PaymentMethodId = pm
        .parse()
        .map_err(|_| ApiError::not_found("no such payment method on this customer"))?;
    let path = format!("/v1/customers/{id}/payment_methods/{pm}");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        execute(ctx, id, CustomerCommand::DetachPaymentMethod(pm)).await
    })
    .await
}

/// Runs a command that leaves personal data as it is, answering with it opened.
async fn execute(
    ctx: Ctx,
    id: CustomerId,
    command: CustomerCommand,
) -> Result<Outcome, command::Failure> {
    let service = &ctx.state.customers;
    let shown = service.load(id).await?.personal;
    let render = move |c: &Customer| render(c, shown.as_ref());
    let done = service
        .executor()
        .execute::<Customer>(&id, command, &ctx.metadata, ctx.draft.as_ref(), &render)
        .await?;
    let rendered = render(&done.state);
    Ok(Outcome::from((done, rendered)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceTransaction {
    /// Minor units: negative is credit for the customer (used by its next invoices), positive
    /// is owed.
    pub amount: i64,
    /// ISO-4217; the customer's currency once it has a balance.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// Why (shown in the event).
    pub description: String,
}

#[utoipa::path(
    post,
    path = "/v1/customers/{id}/balance_transactions",
    request_body = BalanceTransaction,
    params(("id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "the customer with its new balance (Stripe's customer balance)", body = CustomerObject),
        (status = 400, description = "zero amount, another currency than the balance's, overflow"),
        (status = 404, description = "no such customer"),
    ),
    security(("bearer" = []))
)]
pub async fn adjust_balance(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id = customer_id(&id)?;
    let path = format!("/v1/customers/{id}/balance_transactions");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let req: BalanceTransaction = parse_json(&ctx.body)?;
        let currency = ledger::money::Currency::parse(&req.currency)
            .map_err(|e| ApiError::invalid("currency_invalid", Some("currency"), e.to_string()))?;
        let command = CustomerCommand::AdjustBalance {
            amount: ledger::money::Money::new(req.amount, currency),
            reason: req.description,
            source: None,
        };
        execute(ctx, id, command).await
    })
    .await
}

/// Links the method to the customer at its gateway when that gateway is configured and needs it
/// (Stripe: a Customer object, made once, with the `pm_…` attached). Nothing is recorded when
/// the gateway refuses (400) or cannot be asked (503).
async fn link(
    state: &AppState,
    id: CustomerId,
    gateway: GatewayKind,
    token: &str,
) -> Result<LinkOutcome, ApiError> {
    let Some(g) = state.gateways.get(gateway.as_str()) else {
        return Ok(LinkOutcome::default());
    };
    let customer = state.customers.load(id).await?.customer;
    let request = LinkRequest {
        customer_ref: id.to_string(),
        gateway_customer: customer.gateway_customer(gateway).map(str::to_string),
        payment_method: token.to_string(),
    };
    g.link(request).await.map_err(|e| match e {
        GatewayError::InvalidRequest(m) => {
            ApiError::invalid("payment_method_invalid", Some("token"), m)
        }
        other => {
            tracing::warn!(error = %other, "linking a payment method at its gateway failed");
            ApiError::gateway_unavailable(
                "the gateway could not be reached to attach this payment method; nothing was recorded, try again",
            )
        }
    })
}
