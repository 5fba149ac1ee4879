//! `POST /v1/customers`, `POST /v1/customers/{id}` (partial update) and
//! `DELETE /v1/customers/{id}/personal_data` (GDPR erasure by crypto-shredding).
//! Payment methods are in [`payment_methods`].

pub mod object;
pub mod payment_methods;
pub mod read;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use commands::CommandError;
use commands::customer::personal::Address;
use commands::customer::{
    Customer, CustomerChanges, CustomerCommand, CustomerError, NewCustomer, PersonalData,
    TaxLocation,
};
use commands::test_clock::TestClock;
use ledger::ids::{CustomerId, TestClockId};
use ledger::money::Currency;
use serde::Deserialize;
use utoipa::ToSchema;

use self::object::{CustomerObject, render};
use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::command::{self, Outcome};
use super::error::ApiError;
use crate::state::AppState;

/// Personal fields: sealed with the customer's data key before they are recorded.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerFields {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `line1, line2, city, state, postal_code, country`; `country` (and a short `state` code)
    /// also set where the customer is taxed.
    #[schema(value_type = Option<Object>)]
    pub address: Option<Address>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// ISO-4217; fixed once the customer has a balance.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    /// No tax on this customer's invoices.
    pub tax_exempt: Option<bool>,
    /// `clock_…`: at creation only; the customer's subscriptions then live at the clock's time.
    pub test_clock: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/customers",
    request_body = CustomerFields,
    responses(
        (status = 200, description = "the new customer", body = CustomerObject),
        (status = 400, description = "invalid request; nothing recorded"),
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
        "/v1/customers",
        &body,
        |ctx| async move {
            let req: CustomerFields = parse_json(&ctx.body)?;
            let currency = parse_currency(req.currency.as_deref())?;
            let tax_location = tax_location(req.address.as_ref());
            let test_clock = match &req.test_clock {
                None => None,
                Some(id) => Some(existing_clock(&ctx.state, id).await?),
            };
            let personal = merge(PersonalData::default(), req)?;
            // Under an idempotency key the id is derived from it, so a retry lands on the same stream.
            let id = match &ctx.draft {
                Some(d) => CustomerId::derived(&format!("{}:{}", d.api_key_id, d.key)),
                None => CustomerId::new(),
            };
            let service = &ctx.state.customers;
            let new = NewCustomer {
                customer_id: id,
                currency,
                tax_exempt: personal.1.unwrap_or(false),
                tax_location,
                test_clock,
                personal: service.seal(id, &personal.0).await?,
            };
            let shown = personal.0;
            let render = move |c: &Customer| render(c, Some(&shown));
            let done = service
                .executor()
                .execute::<Customer>(
                    &id,
                    CustomerCommand::Create(new),
                    &ctx.metadata,
                    ctx.draft.as_ref(),
                    &render,
                )
                .await?;
            let rendered = render(&done.state);
            Ok(Outcome::from((done, rendered)))
        },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/customers/{id}",
    request_body = CustomerFields,
    params(("id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "the updated customer (fields not sent are kept; `\"\"` clears a text field)", body = CustomerObject),
        (status = 404, description = "no such customer"),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id = customer_id(&id)?;
    let path = format!("/v1/customers/{id}");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let req: CustomerFields = parse_json(&ctx.body)?;
        if req.test_clock.is_some() {
            return Err(ApiError::invalid(
                "parameter_invalid",
                Some("test_clock"),
                "a test clock can only be given when the customer is created",
            )
            .into());
        }
        let service = &ctx.state.customers;
        let current = service.load(id).await?;
        let currency = parse_currency(req.currency.as_deref())?;
        let location = req.address.as_ref().map(|a| tax_location(Some(a)));
        let touches_personal = req.name.is_some()
            || req.email.is_some()
            || req.phone.is_some()
            || req.address.is_some()
            || req.metadata.is_some();
        let before = current.personal.clone().unwrap_or_default();
        let (personal, tax_exempt) = merge(before, req)?;
        let sealed = match touches_personal {
            true if current.customer.erased() => {
                return Err(CommandError::from(CustomerError::Erased).into());
            }
            true => Some(service.seal(id, &personal).await?),
            false => None,
        };
        let shown = if current.customer.erased() {
            None
        } else {
            Some(personal)
        };
        let changes = CustomerChanges {
            currency,
            tax_exempt,
            tax_location: location.flatten(),
            personal: sealed,
        };
        let render = move |c: &Customer| render(c, shown.as_ref());
        let done = service
            .executor()
            .execute::<Customer>(
                &id,
                CustomerCommand::Update(changes),
                &ctx.metadata,
                ctx.draft.as_ref(),
                &render,
            )
            .await?;
        let rendered = render(&done.state);
        Ok(Outcome::from((done, rendered)))
    })
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/customers/{id}/personal_data",
    params(("id" = String, Path, description = "`cus_…`")),
    responses(
        (status = 200, description = "the customer without personal data: its data key is destroyed, so the log's sealed copies cannot be read any more; money facts stay", body = CustomerObject),
        (status = 404, description = "no such customer"),
    ),
    security(("bearer" = []))
)]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id = customer_id(&id)?;
    let path = format!("/v1/customers/{id}/personal_data");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let render = |c: &Customer| render(c, None);
        let done = ctx
            .state
            .customers
            .erase(id, &ctx.metadata, ctx.draft.as_ref(), &render)
            .await?;
        let rendered = render(&done.state);
        Ok(Outcome::from((done, rendered)))
    })
    .await
}

async fn existing_clock(state: &AppState, id: &str) -> Result<TestClockId, command::Failure> {
    let missing =
        || ApiError::invalid("resource_missing", Some("test_clock"), "no such test clock");
    let id: TestClockId = id.parse().map_err(|_| missing())?;
    let loaded = state
        .executor
        .load::<TestClock>(&id)
        .await
        .map_err(CommandError::from)?;
    loaded.state.map(|c| c.id).ok_or_else(|| missing().into())
}

pub(super) fn customer_id(id: &str) -> Result<CustomerId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found("no such customer"))
}

fn parse_currency(code: Option<&str>) -> Result<Option<Currency>, ApiError> {
    code.map(Currency::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("currency_invalid", Some("currency"), e.to_string()))
}

/// Where the address says the customer is taxed: its country, and its state when that is a
/// code (`CA`, `NSW`, `US-CA`: up to 10 letters, digits or dashes; a state written out in
/// words is not one); `None` without a country.
fn tax_location(address: Option<&Address>) -> Option<TaxLocation> {
    let a = address?;
    let country = a.country.clone().filter(|c| !c.is_empty())?;
    let state = a.state.clone().filter(|s| {
        (1..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    Some(TaxLocation { country, state })
}

/// `before` with the request's personal fields applied (`""` clears one); also answers the
/// requested `tax_exempt`.
fn merge(
    mut p: PersonalData,
    req: CustomerFields,
) -> Result<(PersonalData, Option<bool>), ApiError> {
    let set = |slot: &mut Option<String>, v: Option<String>| {
        if let Some(v) = v {
            *slot = (!v.is_empty()).then_some(v);
        }
    };
    set(&mut p.name, req.name);
    set(&mut p.email, req.email);
    set(&mut p.phone, req.phone);
    if let Some(a) = req.address {
        p.address = Some(a);
    }
    if let Some(m) = req.metadata {
        p.metadata = m;
    }
    p.check()
        .map_err(|e| ApiError::invalid("parameter_invalid", Some(e.field), e.to_string()))?;
    Ok((p, req.tax_exempt))
}
