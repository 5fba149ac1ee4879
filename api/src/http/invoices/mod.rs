//! Invoices: `POST /v1/invoices` (a one-off draft), `…/{id}/finalize`, `/pay`, `/void`,
//! `/mark_uncollectible`, `/send`, `GET /v1/invoices/{id}`, and `POST /v1/credit_notes`.

pub mod object;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use commands::CommandError;
use commands::aggregate::Executed;
use commands::billing::{CreditNoteRequest, InvoiceRequest, Reply};
use commands::invoice::{BillingReason, CreditNoteReason, Invoice, InvoiceCommand, ItemInput};
use commands::tax_rate::TaxRate;
use ledger::access::Scope;
use ledger::ids::{CreditNoteId, CustomerId, InvoiceId, TaxRateId};
use ledger::money::{Currency, Money};
use serde::Deserialize;
use utoipa::ToSchema;

use self::object::{InvoiceObject, render};
use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::command::{self, Ctx, Failure, Outcome};
use super::error::ApiError;
use super::respond::json_text;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoiceItem {
    pub description: String,
    /// Unit amount, minor units.
    pub amount: i64,
    /// Default 1.
    pub quantity: Option<i64>,
    /// `tr_…`; the same on every item (default: the rates of the customer's location).
    pub tax_rates: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoice {
    /// `cus_…`
    pub customer_id: String,
    /// Default: the customer's currency.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    pub items: Vec<CreateInvoiceItem>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCreditNote {
    /// `in_…`
    pub invoice_id: String,
    /// Minor units: at most what is still due (open) or what was paid and not yet refunded.
    pub amount: i64,
    #[schema(value_type = crate::http::openapi::CreditNoteReason)]
    pub reason: CreditNoteReason,
}

fn invoice_id(id: &str) -> Result<InvoiceId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("no such invoice"))
}

fn answer(done: Executed<Invoice>) -> Outcome {
    let rendered = render(&done.state);
    Outcome::from((done, rendered))
}

#[utoipa::path(
    post,
    path = "/v1/invoices",
    request_body = CreateInvoice,
    responses(
        (status = 200, description = "a draft invoice with its lines, taxes and totals", body = InvoiceObject),
        (status = 400, description = "invalid items; nothing recorded"),
        (status = 404, description = "no such customer or tax rate"),
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
        "/v1/invoices",
        &body,
        |ctx| async move {
            let req: CreateInvoice = parse_json(&ctx.body)?;
            let customer_id: CustomerId = req
                .customer_id
                .parse()
                .map_err(|_| ApiError::not_found("no such customer"))?;
            let customer = ctx.state.customers.load(customer_id).await?.customer;
            let currency = match (&req.currency, customer.currency) {
                (Some(code), _) => Currency::parse(code).map_err(|e| {
                    ApiError::invalid("currency_invalid", Some("currency"), e.to_string())
                })?,
                (None, Some(c)) => c,
                (None, None) => {
                    return Err(ApiError::invalid(
                        "parameter_missing",
                        Some("currency"),
                        "the customer has no currency: give one",
                    )
                    .into());
                }
            };
            let tax_rates = explicit_tax_rates(&ctx, &req.items).await?;
            let items = req
                .items
                .into_iter()
                .map(|i| ItemInput {
                    description: i.description,
                    unit_amount: Money::new(i.amount, currency),
                    quantity: i.quantity.unwrap_or(1),
                    proration: false,
                    period: None,
                })
                .collect();
            let invoice_id = match &ctx.draft {
                Some(d) => InvoiceId::derived(&format!("{}:{}", d.api_key_id, d.key)),
                None => InvoiceId::new(),
            };
            let billing = ctx.state.billing.for_customer(&customer).await?;
            let request = InvoiceRequest {
                invoice_id,
                customer,
                currency,
                subscription_id: None,
                period: None,
                reason: BillingReason::Manual,
                items,
            };
            let done = billing
                .draft_invoice(
                    request,
                    tax_rates,
                    &ctx.metadata,
                    ctx.draft.as_ref(),
                    &render,
                )
                .await?;
            Ok(answer(done))
        },
    )
    .await
}

/// The items' tax rates when given (the same list on every item), loaded by id.
async fn explicit_tax_rates(
    ctx: &Ctx,
    items: &[CreateInvoiceItem],
) -> Result<Option<Vec<(TaxRateId, commands::pricing::TaxRate)>>, Failure> {
    let Some(first) = items.first().and_then(|i| i.tax_rates.clone()) else {
        if items.iter().any(|i| i.tax_rates.is_some()) {
            return Err(same_rates().into());
        }
        return Ok(None);
    };
    if items.iter().any(|i| i.tax_rates.as_ref() != Some(&first)) {
        return Err(same_rates().into());
    }
    let mut rates = vec![];
    for id in first {
        let id: TaxRateId = id
            .parse()
            .map_err(|_| ApiError::not_found(format!("no such tax rate: {id}")))?;
        let rate = ctx
            .state
            .executor
            .load::<TaxRate>(&id)
            .await
            .map_err(CommandError::from)?
            .state
            .ok_or_else(|| ApiError::not_found(format!("no such tax rate: {id}")))?;
        rates.push((id, rate.rate));
    }
    Ok(Some(rates))
}

fn same_rates() -> ApiError {
    ApiError::invalid(
        "parameter_invalid",
        Some("items"),
        "tax_rates must be the same on every item (per-item rates are not supported)",
    )
}

/// An action on an invoice, at its customer's time.
async fn action(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    body: Result<Bytes, BytesRejection>,
    name: &'static str,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id = invoice_id(&id)?;
    let path = format!("/v1/invoices/{id}/{name}");
    command::run(
        &state,
        &caller,
        &headers,
        &path,
        &body,
        move |ctx| async move {
            let invoice = ctx
                .state
                .executor
                .load::<Invoice>(&id)
                .await
                .map_err(CommandError::from)?
                .state
                .ok_or_else(|| ApiError::not_found("no such invoice"))?;
            let customer = ctx
                .state
                .customers
                .load(invoice.customer_id)
                .await?
                .customer;
            let billing = ctx.state.billing.for_customer(&customer).await?;
            let m = &ctx.metadata;
            let key = ctx.draft.as_ref();
            let reply = Reply {
                key,
                render: &render,
            };
            // Every action stores its answer under the key with its last event on the invoice.
            let done = match name {
                "finalize" => billing.finalize_invoice(id, m, reply).await?,
                "pay" => billing.pay_invoice(id, m, reply).await?,
                "void" => billing.void_invoice(id, m, key, &render).await?,
                _ => {
                    let command = match name {
                        "send" => InvoiceCommand::MarkSent,
                        _ if invoice.unresolved_attempt().is_some() => {
                            return Err(ApiError::invalid(
                                "precondition_failed",
                                None,
                                "a payment of this invoice has no outcome yet; retry after /pay",
                            )
                            .into());
                        }
                        _ => InvoiceCommand::MarkUncollectible,
                    };
                    billing
                        .executor()
                        .execute::<Invoice>(&id, command, m, key, &render)
                        .await?
                }
            };
            let (state, idempotency_stored) = (done.state, done.idempotency_stored);
            let position = ctx
                .state
                .store
                .head()
                .await
                .map_err(CommandError::from)?
                .position;
            Ok(answer(Executed {
                state,
                position,
                idempotency_stored,
            }))
        },
    )
    .await
}

macro_rules! invoice_action {
    ($fn:ident, $name:literal, $what:literal) => {
        #[utoipa::path(
                    post,
                    path = concat!("/v1/invoices/{id}/", $name),
                    params(("id" = String, Path, description = "`in_…`")),
                    responses(
                        (status = 200, description = $what, body = InvoiceObject),
                        (status = 400, description = "not possible in the invoice's status"),
                        (status = 404, description = "no such invoice"),
                    ),
                    security(("bearer" = []))
                )]
        pub async fn $fn(
            State(state): State<AppState>,
            caller: Caller,
            headers: HeaderMap,
            Path(id): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> Result<Response, ApiError> {
            action(state, caller, headers, id, body, $name).await
        }
    };
}

invoice_action!(
    finalize,
    "finalize",
    "finalized with the next gapless number"
);
invoice_action!(
    pay,
    "pay",
    "paid with the customer's default payment method (or the failure recorded)"
);
invoice_action!(void, "void", "voided");
invoice_action!(
    mark_uncollectible,
    "mark_uncollectible",
    "marked uncollectible"
);
invoice_action!(send, "send", "recorded as sent to the customer");

#[utoipa::path(
    get,
    path = "/v1/invoices/{id}",
    params(("id" = String, Path, description = "`in_…`")),
    responses(
        (status = 200, description = "the invoice, from its own stream", body = InvoiceObject),
        (status = 404, description = "no such invoice"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let id = invoice_id(&id)?;
    let invoice = state
        .executor
        .load::<Invoice>(&id)
        .await?
        .state
        .ok_or_else(|| ApiError::not_found("no such invoice"))?;
    let r = render(&invoice);
    Ok(json_text(r.status, r.body))
}

#[utoipa::path(
    post,
    path = "/v1/credit_notes",
    request_body = CreateCreditNote,
    responses(
        (status = 200, description = "the invoice with the credit note: less due (open), or refunded to its charge (paid)", body = InvoiceObject),
        (status = 400, description = "too large, or not possible in the invoice's status"),
        (status = 404, description = "no such invoice"),
    ),
    security(("bearer" = []))
)]
pub async fn credit_note(
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
        "/v1/credit_notes",
        &body,
        |ctx| async move {
            let req: CreateCreditNote = parse_json(&ctx.body)?;
            let id = invoice_id(&req.invoice_id)?;
            let note = match &ctx.draft {
                Some(d) => CreditNoteId::derived(&format!("{}:{}", d.api_key_id, d.key)),
                None => CreditNoteId::new(),
            };
            let done = ctx
                .state
                .billing
                .credit_note(
                    CreditNoteRequest {
                        invoice_id: id,
                        credit_note_id: note,
                        amount: req.amount,
                        reason: req.reason,
                    },
                    &ctx.metadata,
                    ctx.draft.as_ref(),
                    &render,
                )
                .await?;
            Ok(answer(done))
        },
    )
    .await
}
