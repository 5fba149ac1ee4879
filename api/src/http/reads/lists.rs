//! `GET` lists of the read models, and the objects only read models serve (plans, charges).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use commands::charge::{Charge, Rendered};
use commands::customer::Customer;
use commands::invoice::Invoice;
use commands::plan::Plan;
use commands::subscription::Subscription;
use commands::tax_rate::TaxRate;
use ledger::access::Scope;
use ledger::event::Position;
use serde::de::DeserializeOwned;

use super::{ListQuery, PositionQuery, list_response, query, state_of, wait_for};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::respond::{json_text, with_position};
use crate::http::{charge_json, customers, invoices, plans, subscriptions, tax_rates};
use crate::state::AppState;

const SUBSCRIPTION_STATUSES: &[&str] = &[
    "trialing", "active", "past_due", "canceled", "unpaid", "paused",
];
const INVOICE_STATUSES: &[&str] = &["draft", "open", "paid", "void", "uncollectible"];
const CHARGE_STATUSES: &[&str] = &["pending", "in_review", "succeeded", "failed"];

/// A list of `projection`'s documents as `T`, each rendered by `render`.
pub(crate) async fn list_of<T: DeserializeOwned>(
    state: &AppState,
    q: &ListQuery,
    projection: &str,
    url: &str,
    statuses: &[&str],
    render: fn(&T) -> Rendered,
) -> Result<Response, ApiError> {
    let filter = q.filter(statuses)?;
    let position = wait_for(state, projection, q.min_position).await?;
    let page = super::page(state, projection, &filter).await?;
    let bodies = page
        .data
        .iter()
        .map(|(_, doc)| state_of::<T>(doc).map(|t| render(&t).body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(list_response(url, page, bodies, position))
}

/// One document of `projection` as `T`, rendered.
pub(crate) async fn one_of<T: DeserializeOwned>(
    state: &AppState,
    q: &PositionQuery,
    projection: &str,
    id: &str,
    what: &str,
    render: fn(&T) -> Rendered,
) -> Result<Response, ApiError> {
    let position = wait_for(state, projection, q.min_position).await?;
    let doc = state
        .read
        .get(projection, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no such {what}")))?;
    let body = render(&state_of::<T>(&doc)?).body;
    Ok(with_position(json_text(200, body), Position(position)))
}

/// The customer filter of a `/v1/customers/{id}/…` list: the path's.
fn for_customer(id: String, mut q: ListQuery) -> Result<ListQuery, ApiError> {
    if id.parse::<ledger::ids::CustomerId>().is_err() {
        return Err(ApiError::not_found("no such customer"));
    }
    if q.customer.is_some() {
        return Err(ApiError::invalid(
            "parameter_invalid",
            Some("customer"),
            "the customer is given by the path",
        ));
    }
    q.customer = Some(id);
    Ok(q)
}

#[utoipa::path(get, path = "/v1/customers", params(ListQuery),
    responses((status = 200, description = "customers, newest first (status `active` or `erased`)")),
    security(("bearer" = [])))]
pub async fn customers_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    let filter = q.filter(&["active", "erased"])?;
    let position = wait_for(&state, "customers", q.min_position).await?;
    let page = super::page(&state, "customers", &filter).await?;
    let mut bodies = Vec::with_capacity(page.data.len());
    for (_, doc) in &page.data {
        let view = state.customers.view(state_of::<Customer>(doc)?).await?;
        bodies.push(customers::object::render(&view.customer, view.personal.as_ref()).body);
    }
    Ok(list_response("/v1/customers", page, bodies, position))
}

#[utoipa::path(get, path = "/v1/customers/{id}/invoices", params(("id" = String, Path), ListQuery),
    responses((status = 200, description = "the customer's invoices, newest first")),
    security(("bearer" = [])))]
pub async fn customer_invoices(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let url = format!("/v1/customers/{id}/invoices");
    let q = for_customer(id, query(q)?)?;
    list_of::<Invoice>(
        &state,
        &q,
        "invoices",
        &url,
        INVOICE_STATUSES,
        invoices::object::render,
    )
    .await
}

#[utoipa::path(get, path = "/v1/customers/{id}/charges", params(("id" = String, Path), ListQuery),
    responses((status = 200, description = "the customer's charges, newest first")),
    security(("bearer" = [])))]
pub async fn customer_charges(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let url = format!("/v1/customers/{id}/charges");
    let q = for_customer(id, query(q)?)?;
    list_of::<Charge>(
        &state,
        &q,
        "charges",
        &url,
        CHARGE_STATUSES,
        charge_json::render_object,
    )
    .await
}

#[utoipa::path(get, path = "/v1/subscriptions", params(ListQuery),
    responses((status = 200, description = "subscriptions, newest first")),
    security(("bearer" = [])))]
pub async fn subscriptions_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    list_of::<Subscription>(
        &state,
        &q,
        "subscriptions",
        "/v1/subscriptions",
        SUBSCRIPTION_STATUSES,
        subscriptions::object::render,
    )
    .await
}

#[utoipa::path(get, path = "/v1/invoices", params(ListQuery),
    responses((status = 200, description = "invoices, newest first")),
    security(("bearer" = [])))]
pub async fn invoices_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    list_of::<Invoice>(
        &state,
        &q,
        "invoices",
        "/v1/invoices",
        INVOICE_STATUSES,
        invoices::object::render,
    )
    .await
}

#[utoipa::path(get, path = "/v1/charges", params(ListQuery),
    responses((status = 200, description = "charges, newest first")),
    security(("bearer" = [])))]
pub async fn charges_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    list_of::<Charge>(
        &state,
        &q,
        "charges",
        "/v1/charges",
        CHARGE_STATUSES,
        charge_json::render_object,
    )
    .await
}

#[utoipa::path(get, path = "/v1/charges/{id}", params(("id" = String, Path), PositionQuery),
    responses((status = 200, description = "the charge"), (status = 404, description = "no such charge")),
    security(("bearer" = [])))]
pub async fn charge_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<PositionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    one_of::<Charge>(
        &state,
        &q,
        "charges",
        &id,
        "charge",
        charge_json::render_object,
    )
    .await
}

#[utoipa::path(get, path = "/v1/plans", params(ListQuery),
    responses((status = 200, description = "plans, newest first (status `active` or `archived`)")),
    security(("bearer" = [])))]
pub async fn plans_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    list_of::<Plan>(
        &state,
        &q,
        "plans",
        "/v1/plans",
        &["active", "archived"],
        plans::render,
    )
    .await
}

#[utoipa::path(get, path = "/v1/plans/{id}", params(("id" = String, Path), PositionQuery),
    responses((status = 200, description = "the plan"), (status = 404, description = "no such plan")),
    security(("bearer" = [])))]
pub async fn plan_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<PositionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    one_of::<Plan>(&state, &q, "plans", &id, "plan", plans::render).await
}

#[utoipa::path(get, path = "/v1/tax_rates", params(ListQuery),
    responses((status = 200, description = "tax rates, newest first")),
    security(("bearer" = [])))]
pub async fn tax_rates_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    list_of::<TaxRate>(
        &state,
        &q,
        "tax_rates",
        "/v1/tax_rates",
        &[],
        tax_rates::render,
    )
    .await
}
