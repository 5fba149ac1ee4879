//! `GET /v1/ledger/trial_balance`: the journal's totals per currency and account.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use ledger::access::Scope;
use ledger::event::Position;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::wait_for;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::respond::{json_text, with_position};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TrialBalanceQuery {
    /// Only what was posted at or before this moment (RFC 3339, business time); default: all.
    pub as_of: Option<String>,
    /// Wait until the journal has applied this log position (read-your-writes).
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountLine {
    pub account: String,
    pub debit: i64,
    pub credit: i64,
    /// `debit − credit`.
    pub balance: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurrencyBalance {
    pub currency: String,
    pub debits: i64,
    pub credits: i64,
    /// `debits == credits` (always, by construction of the journal).
    pub balanced: bool,
    pub accounts: Vec<AccountLine>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrialBalance {
    /// Always `trial_balance`.
    pub object: &'static str,
    pub as_of: Option<String>,
    /// The log position the journal had applied.
    pub position: i64,
    pub currencies: Vec<CurrencyBalance>,
}

fn overflow() -> ApiError {
    ApiError::internal("trial balance", &"amount overflow")
}

#[utoipa::path(get, path = "/v1/ledger/trial_balance", params(TrialBalanceQuery),
    responses(
        (status = 200, description = "debits and credits per currency and account", body = TrialBalance),
        (status = 400, description = "as_of is not an RFC 3339 time"),
    ),
    security(("bearer" = [])))]
pub async fn trial_balance(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<TrialBalanceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = super::query(q)?;
    let as_of = q
        .as_of
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid(
                        "as_of_invalid",
                        Some("as_of"),
                        "as_of must be an RFC 3339 time, e.g. 2026-01-31T23:59:59Z",
                    )
                })
        })
        .transpose()?;
    let position = wait_for(&state, "journal", q.min_position).await?;
    let stored = as_of.map(projections::projection::timestamp);
    let lines = state
        .read
        .trial_balance("journal", stored.as_deref())
        .await?;
    let mut by_currency: BTreeMap<String, CurrencyBalance> = BTreeMap::new();
    for l in lines {
        let c = by_currency
            .entry(l.currency.clone())
            .or_insert_with(|| CurrencyBalance {
                currency: l.currency.clone(),
                debits: 0,
                credits: 0,
                balanced: false,
                accounts: Vec::new(),
            });
        c.debits = c.debits.checked_add(l.debit).ok_or_else(overflow)?;
        c.credits = c.credits.checked_add(l.credit).ok_or_else(overflow)?;
        c.accounts.push(AccountLine {
            balance: l.debit.checked_sub(l.credit).ok_or_else(overflow)?,
            account: l.account,
            debit: l.debit,
            credit: l.credit,
        });
    }
    let currencies = by_currency
        .into_values()
        .map(|mut c| {
            c.balanced = c.debits == c.credits;
            c
        })
        .collect();
    let body = TrialBalance {
        object: "trial_balance",
        as_of: as_of.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        position,
        currencies,
    };
    let text = serde_json::to_string(&body).map_err(|e| ApiError::internal("render", &e))?;
    Ok(with_position(json_text(200, text), Position(position)))
}
