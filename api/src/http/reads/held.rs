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

/// What is held inside another read model's documents.
#[derive(Clone, Copy)]
enum Held {
    Refunds,
    CreditNotes,
}

impl Held {
    /// `(pointer read model, holder read model, list url, statuses, what)`.
    fn parts(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static str,
    ) {
        match self {
            Held::Refunds => (
                "refunds",
                "charges",
                "/v1/refunds",
                &["pending", "succeeded", "failed"],
                "refund",
            ),
            Held::CreditNotes => (
                "credit_notes",
                "invoices",
                "/v1/credit_notes",
                &[],
                "credit note",
            ),
        }
    }

    async fn body(self, state: &AppState, id: &str, doc: &Doc) -> Result<String, ApiError> {
        match self {
            Held::Refunds => refund_body(state, id, doc).await,
            Held::CreditNotes => credit_note_body(state, id, doc).await,
        }
    }

    /// The holder at `min_position` and at the newest of `docs` (the pointer and its holder are
    /// separate read models, each with its own checkpoint); `pointed`: where the pointer read
    /// model is. Answers the position both have reached.
    async fn caught_up<'d>(
        self,
        state: &AppState,
        pointed: i64,
        min_position: Option<i64>,
        docs: impl Iterator<Item = &'d Doc>,
    ) -> Result<i64, ApiError> {
        let (_, holder, ..) = self.parts();
        let wanted = docs.map(|d| d.position).max().max(min_position);
        let held = wait_for(state, holder, wanted).await?;
        Ok(pointed.min(held))
    }

    async fn list(self, state: &AppState, q: &ListQuery) -> Result<Response, ApiError> {
        let (pointer, _, url, statuses, _) = self.parts();
        no_customer(q)?;
        let filter = q.filter(statuses)?;
        let pointed = wait_for(state, pointer, q.min_position).await?;
        let page = super::page(state, pointer, &filter).await?;
        let position = self
            .caught_up(
                state,
                pointed,
                q.min_position,
                page.data.iter().map(|(_, d)| d),
            )
            .await?;
        let mut bodies = Vec::with_capacity(page.data.len());
        for (id, doc) in &page.data {
            bodies.push(self.body(state, id, doc).await?);
        }
        Ok(list_response(url, page, bodies, position))
    }

    async fn get(
        self,
        state: &AppState,
        id: &str,
        q: &PositionQuery,
    ) -> Result<Response, ApiError> {
        let (pointer, _, _, _, what) = self.parts();
        let pointed = wait_for(state, pointer, q.min_position).await?;
        let doc = state
            .read
            .get(pointer, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no such {what}")))?;
        let position = self
            .caught_up(state, pointed, q.min_position, std::iter::once(&doc))
            .await?;
        let body = self.body(state, id, &doc).await?;
        Ok(with_position(json_text(200, body), Position(position)))
    }
}

fn holder_id(doc: &Doc, key: &str) -> Result<String, ApiError> {
    let pointer: std::collections::HashMap<String, String> = doc
        .body_as()
        .map_err(|e| ApiError::internal("read-model pointer", &e))?;
    pointer
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::internal("read-model pointer", &key))
}

async fn refund_body(state: &AppState, id: &str, doc: &Doc) -> Result<String, ApiError> {
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
    Held::Refunds.list(&state, &query(q)?).await
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
    Held::Refunds.get(&state, &id, &query(q)?).await
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
    Held::CreditNotes.list(&state, &query(q)?).await
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
    Held::CreditNotes.get(&state, &id, &query(q)?).await
}
