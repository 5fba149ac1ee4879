//! The audit log: `GET /v1/events` (the log itself, in position order, filterable by stream and
//! type) and `GET /v1/events/{event_id}`. Events are shown as stored — with their hashes, so a
//! reader can check the chain — and personal data only ever sealed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use ledger::access::Scope;
use ledger::event::{Position, RecordedEvent, StreamId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::error::ApiError;
use super::respond::json_text;
use crate::state::AppState;

/// Most events in one page.
const LIMIT_MAX: u32 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events after this position (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Only this stream, e.g. `customer-cus_…`.
    pub stream_id: Option<String>,
    /// Only this event type, e.g. `InvoicePaid`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
}

/// One recorded event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventObject {
    /// The event id (UUID).
    pub id: String,
    /// Always `event`.
    pub object: &'static str,
    pub position: i64,
    pub stream_id: String,
    pub stream_version: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: i32,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Business time (the billing clock), RFC 3339.
    pub occurred_at: String,
    /// Wall time of the commit, RFC 3339.
    pub recorded_at: String,
    /// SHA-256 of the previous event (hex).
    pub prev_hash: String,
    /// SHA-256(prev_hash ‖ this event's canonical bytes) (hex).
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<EventObject>,
    pub has_more: bool,
}

fn object(e: &RecordedEvent) -> EventObject {
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    EventObject {
        id: e.event_id.to_string(),
        object: "event",
        position: e.position.0,
        stream_id: e.stream_id.to_string(),
        stream_version: e.stream_version,
        event_type: e.event_type.clone(),
        schema_version: e.schema_version,
        payload: e.payload.clone(),
        metadata: serde_json::to_value(&e.metadata).unwrap_or_default(),
        occurred_at: time(e.occurred_at),
        recorded_at: time(e.recorded_at),
        prev_hash: e.prev_hash.to_hex(),
        hash: e.hash.to_hex(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/events",
    params(EventsQuery),
    responses(
        (status = 200, description = "a page of the log in position order; the next page starts after the last position", body = EventList),
        (status = 400, description = "a bad parameter"),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let Query(q) =
        query.map_err(|e| ApiError::invalid("parameter_invalid", None, e.body_text()))?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid(
            "parameter_invalid",
            Some("after"),
            "after must not be negative",
        ));
    }
    let limit = q.limit.unwrap_or(10);
    if !(1..=LIMIT_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "parameter_invalid",
            Some("limit"),
            "limit must be 1 to 100",
        ));
    }
    let stream = q
        .stream_id
        .as_deref()
        .map(|s| {
            StreamId::new(s).map_err(|e| {
                ApiError::invalid("parameter_invalid", Some("stream_id"), e.to_string())
            })
        })
        .transpose()?;
    let event_type = q.event_type.as_deref().filter(|t| !t.is_empty());
    // Event types are names (`InvoicePaid`): anything else matches nothing, on both stores.
    if event_type.is_some_and(|t| {
        t.len() > 200 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }) {
        return Err(ApiError::invalid(
            "parameter_invalid",
            Some("type"),
            "type is a name of at most 200 letters, digits or `_`",
        ));
    }
    let mut page = state
        .store
        .read_page_filtered(Position(after), limit + 1, stream.as_ref(), event_type)
        .await?;
    let has_more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let list = EventList {
        object: "list",
        data: page.iter().map(object).collect(),
        has_more,
    };
    Ok(json_text(
        200,
        serde_json::to_string(&list).unwrap_or_default(),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    params(("id" = String, Path, description = "the event id (UUID)")),
    responses(
        (status = 200, description = "the event as stored", body = EventObject),
        (status = 404, description = "no such event"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let id: uuid::Uuid = id
        .parse()
        .map_err(|_| ApiError::not_found("no such event"))?;
    let event = state
        .store
        .read_event(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such event"))?;
    Ok(json_text(
        200,
        serde_json::to_string(&object(&event)).unwrap_or_default(),
    ))
}
