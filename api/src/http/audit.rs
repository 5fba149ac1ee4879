//! `GET /v1/audit/verify`: the hash-chain check over HTTP (an `admin` key).

use axum::Json;
use axum::extract::{Query, State};
use ledger::access::Scope;
use ledger::chain::VerifyReport;
use ledger::event::Position;
use ledger::store::verify_chain;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyParams {
    /// First position to check (default 1); the event before it is trusted.
    pub from: Option<i64>,
}

/// Verifies the hash chain from `from` to the head. 200 with the report either way: a break is
/// a finding (`first_break`), not an error of the request.
#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    params(VerifyParams),
    responses(
        (status = 200, description = "the report; `first_break` is null when the chain holds"),
        (status = 400, description = "`from` is not a position of the log"),
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    params: Result<Query<VerifyParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<VerifyReport>, ApiError> {
    caller.require(Scope::Admin)?;
    let Query(params) =
        params.map_err(|e| ApiError::invalid("parameter_invalid", Some("from"), e.body_text()))?;
    let from = params.from.unwrap_or(1);
    let head = state.store.head().await?;
    if from < 1 || from > head.position.0 + 1 {
        return Err(ApiError::invalid(
            "parameter_invalid",
            Some("from"),
            format!("from must be between 1 and {}", head.position.0 + 1),
        ));
    }
    Ok(Json(
        verify_chain(state.store.as_ref(), Position(from)).await?,
    ))
}
