//! The read-model API: lists (and a few objects) served from the projections' read models.
//!
//! Read models trail the log by the projection lag. Every endpoint here accepts
//! `min_position` (the `Billing-Position` a command answered): it waits, up to
//! [`READ_WAIT`], until the read model has applied that position, then answers 503
//! `read_model_behind` with `Retry-After`. Answers carry `Billing-Position`: the position the
//! read model had applied when it was read.

pub mod analytics;
pub mod gateway_events;
pub mod held;
pub mod ledger_api;
pub mod lists;

use std::time::Duration;

use axum::response::Response;
use ledger::event::Position;
use projections::projection::Doc;
use projections::store::{ListFilter, Page};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::respond::{json_text, with_position};
use crate::state::AppState;

/// How long a read waits for `min_position` before answering 503.
pub const READ_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);
/// Most objects in one page.
const LIMIT_MAX: u32 = 100;
const LIMIT_DEFAULT: u32 = 10;

/// Pagination and filters of a list (Stripe's: newest first, `starting_after` a last id).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The id of the last object of the previous page.
    pub starting_after: Option<String>,
    /// Only this customer's (`cus_…`), where objects have one.
    #[param(pattern = "^cus_[0-9a-f]{32}$")]
    pub customer: Option<String>,
    /// Only objects in this status.
    pub status: Option<String>,
    /// Wait until the read model has applied this log position (read-your-writes).
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// Only `min_position`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PositionQuery {
    /// Wait until the read model has applied this log position (read-your-writes).
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

impl ListQuery {
    /// The filter, checked: `statuses` are the ones this list knows.
    pub fn filter(&self, statuses: &[&str]) -> Result<ListFilter, ApiError> {
        let limit = self.limit.unwrap_or(LIMIT_DEFAULT);
        if !(1..=LIMIT_MAX).contains(&limit) {
            return Err(ApiError::invalid(
                "limit_invalid",
                Some("limit"),
                format!("limit must be 1 to {LIMIT_MAX}"),
            ));
        }
        if let Some(s) = &self.status
            && !statuses.contains(&s.as_str())
        {
            return Err(ApiError::invalid(
                "status_invalid",
                Some("status"),
                format!("status must be one of: {}", statuses.join(", ")),
            ));
        }
        if let Some(c) = &self.customer
            && c.parse::<ledger::ids::CustomerId>().is_err()
        {
            return Err(ApiError::invalid(
                "customer_invalid",
                Some("customer"),
                "customer must be a customer id (cus_…)",
            ));
        }
        Ok(ListFilter {
            customer: self.customer.clone(),
            status: self.status.clone(),
            starting_after: self.starting_after.clone(),
            limit,
        })
    }
}

/// The parsed query string; a bad one is a 400 `parameter_invalid`.
pub fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::invalid("parameter_invalid", None, e.body_text()))
}

/// Waits until `projection` has applied `min_position` (if given); answers the position it
/// has applied.
pub async fn wait_for(
    state: &AppState,
    projection: &str,
    min_position: Option<i64>,
) -> Result<i64, ApiError> {
    if let Some(p) = min_position
        && p < 0
    {
        return Err(ApiError::invalid(
            "min_position_invalid",
            Some("min_position"),
            "min_position must be 0 or more",
        ));
    }
    let wanted = min_position.unwrap_or(0);
    if wanted > 0 {
        let head = state.store.head().await?.position.0;
        if wanted > head {
            return Err(ApiError::invalid(
                "min_position_invalid",
                Some("min_position"),
                format!("min_position {wanted} is beyond the log's head ({head})"),
            ));
        }
    }
    let deadline = tokio::time::Instant::now() + READ_WAIT;
    loop {
        let reached = state.read.checkpoint(projection).await?;
        if reached >= wanted {
            return Ok(reached);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::read_model_behind(wanted, reached));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A page of `projection`; an unknown `starting_after` is a 404, as Stripe answers it.
pub async fn page(
    state: &AppState,
    projection: &str,
    filter: &ListFilter,
) -> Result<Page, ApiError> {
    if let Some(after) = &filter.starting_after
        && state.read.get(projection, after).await?.is_none()
    {
        return Err(ApiError::not_found(format!(
            "no such object: starting_after {after}"
        )));
    }
    Ok(state.read.list(projection, filter).await?)
}

/// A Stripe list object from already rendered JSON bodies.
pub fn list_response(url: &str, page: Page, bodies: Vec<String>, position: i64) -> Response {
    let url = serde_json::Value::String(url.to_string());
    let body = format!(
        "{{\"object\":\"list\",\"url\":{url},\"has_more\":{},\"data\":[{}]}}",
        page.has_more,
        bodies.join(",")
    );
    with_position(json_text(200, body), Position(position))
}

/// A document's body as the write side's state type.
pub fn state_of<T: serde::de::DeserializeOwned>(doc: &Doc) -> Result<T, ApiError> {
    doc.body_as()
        .map_err(|e| ApiError::internal("read-model document does not decode", &e))
}
