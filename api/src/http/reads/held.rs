//! Refunds and credit notes, listed and fetched by their own id: the `refunds` and
//! `credit_notes` read models point at the charge or invoice that holds each, and the object is
//! rendered from that holder's read model.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use commands::charge::Charge;
use commands::invoice::Invoice;
use ledger::access::Scope;
use ledger::event::Position;
use ledger::ids::RefundId;
use projections::projection::Doc;
use serde_json::json;

use super::{ListQuery, PositionQuery, list_response, query, state_of, wait_for};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::refunds;
use crate::http::respond::{json_text, with_position};
use crate::state::AppState;

fn no_customer(q: &ListQuery) -> Result<(), ApiError> {
    match q.customer {
        Some(_) => Err(ApiError::invalid(
            "parameter_invalid",
            Some("customer"),
            "this list has no customer filter: list the customer's charges or invoices",
        )),
        None => Ok(()),
    }
}

/// The position both read models have reached (the lower).
async fn both(
    state: &AppState,
    a: &str,
    b: &str,
    min_position: Option<i64>,
) -> Result<i64, ApiError> {
    let x = wait_for(state, a, min_position).await?;
    let y = wait_for(state, b, min_position).await?;
    Ok(x.min(y))
}

fn holder_id(doc: &Doc, key: &str) -> Result<String, ApiError> {
    doc.body[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ApiError::internal("read-model pointer", &key))
}

/// Waits until `holder` has applied what the pointer `doc` was last changed by: the pointer and
/// its holder are separate read models, each with its own checkpoint.
async fn holder_caught_up(state: &AppState, holder: &str, doc: &Doc) -> Result<(), ApiError> {
    wait_for(state, holder, Some(doc.position))
        .await
        .map(|_| ())
}

async fn refund_body(state: &AppState, id: &str, doc: &Doc) -> Result<String, ApiError> {
    holder_caught_up(state, "charges", doc).await?;
    let charge_id = holder_id(doc, "charge")?;
    let charge = state
        .read
        .get("charges", &charge_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such refund"))?;
    let charge: Charge = state_of(&charge)?;
    let refund: RefundId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such refund"))?;
    let rendered = refunds::render(&charge, refund);
    if rendered.status == 404 {
        // The charges read model has applied the refund's event: it must hold it.
        return Err(ApiError::internal(
            "refund read model",
            &"refund not in its charge",
        ));
    }
    Ok(rendered.body)
}

async fn credit_note_body(state: &AppState, id: &str, doc: &Doc) -> Result<String, ApiError> {
    holder_caught_up(state, "invoices", doc).await?;
    let invoice_id = holder_id(doc, "invoice")?;
    let invoice = state
        .read
        .get("invoices", &invoice_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such credit note"))?;
    let invoice: Invoice = state_of(&invoice)?;
    let note = invoice
        .credit_notes
        .iter()
        .find(|n| n.id.to_string() == id)
        .ok_or_else(|| ApiError::internal("credit note read model", &"note not in its invoice"))?;
    let reason = serde_json::to_value(note.reason).unwrap_or_default();
    Ok(json!({
        "id": id, "object": "credit_note", "invoice": invoice_id,
        "customer": invoice.customer_id.to_string(),
        "currency": note.amount.currency().code(), "amount": note.amount.amount_minor(),
        "reason": reason, "type": if note.refund { "post_payment" } else { "pre_payment" },
        "refund": note.refund, "created": doc.created,
    })
    .to_string())
}

#[utoipa::path(get, path = "/v1/refunds", params(ListQuery),
    responses((status = 200, description = "refunds, newest first (status `pending`, `succeeded` or `failed`)")),
    security(("bearer" = [])))]
pub async fn refunds_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    no_customer(&q)?;
    let filter = q.filter(&["pending", "succeeded", "failed"])?;
    let position = both(&state, "refunds", "charges", q.min_position).await?;
    let page = super::page(&state, "refunds", &filter).await?;
    let mut bodies = Vec::with_capacity(page.data.len());
    for (id, doc) in &page.data {
        bodies.push(refund_body(&state, id, doc).await?);
    }
    Ok(list_response("/v1/refunds", page, bodies, position))
}

#[utoipa::path(get, path = "/v1/refunds/{id}", params(("id" = String, Path), PositionQuery),
    responses((status = 200, description = "the refund"), (status = 404, description = "no such refund")),
    security(("bearer" = [])))]
pub async fn refund_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<PositionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    let position = both(&state, "refunds", "charges", q.min_position).await?;
    let doc = state
        .read
        .get("refunds", &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such refund"))?;
    let body = refund_body(&state, &id, &doc).await?;
    Ok(with_position(json_text(200, body), Position(position)))
}

#[utoipa::path(get, path = "/v1/credit_notes", params(ListQuery),
    responses((status = 200, description = "credit notes, newest first")),
    security(("bearer" = [])))]
pub async fn credit_notes_list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    no_customer(&q)?;
    let filter = q.filter(&[])?;
    let position = both(&state, "credit_notes", "invoices", q.min_position).await?;
    let page = super::page(&state, "credit_notes", &filter).await?;
    let mut bodies = Vec::with_capacity(page.data.len());
    for (id, doc) in &page.data {
        bodies.push(credit_note_body(&state, id, doc).await?);
    }
    Ok(list_response("/v1/credit_notes", page, bodies, position))
}

#[utoipa::path(get, path = "/v1/credit_notes/{id}", params(("id" = String, Path), PositionQuery),
    responses((status = 200, description = "the credit note"), (status = 404, description = "no such credit note")),
    security(("bearer" = [])))]
pub async fn credit_note_get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<PositionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    let position = both(&state, "credit_notes", "invoices", q.min_position).await?;
    let doc = state
        .read
        .get("credit_notes", &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such credit note"))?;
    let body = credit_note_body(&state, &id, &doc).await?;
    Ok(with_position(json_text(200, body), Position(position)))
}
