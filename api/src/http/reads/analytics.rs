//! `GET /v1/analytics/…`: revenue (from the journal), payments, MRR, churn and a forecast.
//!
//! Periods are business time (UTC), as the events record it. Rates are decimal strings with
//! four places, rounded half-even; amounts are minor units.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use ledger::access::Scope;
use ledger::event::Position;
use projections::analytics::{Movements, MrrTotal, PaymentCounts};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::{query, state_of, wait_for};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::respond::{json_text, with_position};
use crate::state::AppState;

/// Most months a forecast looks ahead.
const FORECAST_MONTHS_MAX: u32 = 36;
/// Months of history the forecast's churn rate averages.
const TRAILING_MONTHS: usize = 3;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// First day (`YYYY-MM-DD`, UTC), included.
    pub from: String,
    /// Last day (`YYYY-MM-DD`, UTC), included.
    pub to: String,
    /// `day` (default) or `month` (revenue only).
    pub interval: Option<String>,
    /// Only this currency (`usd`).
    #[param(pattern = "^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    /// Wait until the read model has applied this log position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MrrQuery {
    /// Only this currency (`usd`).
    #[param(pattern = "^[A-Za-z]{3}$")]
    pub currency: Option<String>,
    /// Months to forecast (forecast only; 1 to 36, default 12).
    pub months: Option<u32>,
    /// The last month counted (`YYYY-MM`; churn and forecast; default: the current month).
    pub through: Option<String>,
    /// Wait until the read model has applied this log position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

fn day(text: &str, param: &'static str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(
            "date_invalid",
            Some(param),
            format!("{param} must be a date like 2026-03-31"),
        )
    })
}

fn currency(c: Option<&str>) -> Result<Option<String>, ApiError> {
    c.map(|c| {
        ledger::money::Currency::parse(c)
            .map(|c| c.code().to_string())
            .map_err(|e| ApiError::invalid("currency_invalid", Some("currency"), e.to_string()))
    })
    .transpose()
}

/// `[from, to + 1 day)` as stored timestamps.
fn range(q: &PeriodQuery) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let (from, to) = (day(&q.from, "from")?, day(&q.to, "to")?);
    if to < from {
        return Err(ApiError::invalid(
            "period_invalid",
            Some("to"),
            "to must not be before from",
        ));
    }
    Ok((from, to))
}

fn midnight(d: NaiveDate) -> String {
    let t: DateTime<Utc> = d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    projections::projection::timestamp(t)
}

/// `part / whole` with four places, half-even ("0.0000" when `whole` is 0).
fn rate(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "0.0000".into();
    }
    (Decimal::from(part) / Decimal::from(whole))
        .round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven)
        .to_string()
}

fn answer(body: Value, position: i64) -> Response {
    with_position(json_text(200, body.to_string()), Position(position))
}

#[utoipa::path(get, path = "/v1/analytics/revenue", params(PeriodQuery),
    responses((status = 200, description = "gross, refunds, credits (credit notes and voids), net and tax per day or month and currency, from the journal")),
    security(("bearer" = [])))]
pub async fn revenue(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    let (from, to) = range(&q)?;
    let (interval, len) = match q.interval.as_deref() {
        None | Some("day") => ("day", 10),
        Some("month") => ("month", 7),
        Some(_) => {
            return Err(ApiError::invalid(
                "interval_invalid",
                Some("interval"),
                "interval must be day or month",
            ));
        }
    };
    let cur = currency(q.currency.as_deref())?;
    let position = wait_for(&state, "journal", q.min_position).await?;
    let end = to.succ_opt().unwrap_or(to);
    let lines = state
        .read
        .revenue(
            "journal",
            &midnight(from),
            &midnight(end),
            len,
            cur.as_deref(),
        )
        .await?;
    let mut rows: BTreeMap<(String, String), [i64; 4]> = BTreeMap::new();
    for l in lines {
        let r = rows.entry((l.bucket, l.currency)).or_default();
        let (credit_side, debit_side) = (
            l.credit.saturating_sub(l.debit),
            l.debit.saturating_sub(l.credit),
        );
        match l.account.as_str() {
            "revenue" => r[0] = r[0].saturating_add(credit_side),
            "refunds" => r[1] = r[1].saturating_add(debit_side),
            "credit_notes" | "invoice_voids" => r[2] = r[2].saturating_add(debit_side),
            _ => r[3] = r[3].saturating_add(credit_side),
        }
    }
    let data: Vec<Value> = rows
        .into_iter()
        .map(|((period, currency), [gross, refunds, credits, tax])| {
            json!({
                "period": period, "currency": currency, "gross": gross, "refunds": refunds,
                "credits": credits,
                "net": gross.saturating_sub(refunds).saturating_sub(credits), "tax": tax,
            })
        })
        .collect();
    let body = json!({"object": "revenue", "interval": interval, "from": q.from, "to": q.to, "data": data});
    Ok(answer(body, position))
}

#[utoipa::path(get, path = "/v1/analytics/payments", params(PeriodQuery),
    responses((status = 200, description = "payment outcomes per currency: success rate and failure reasons")),
    security(("bearer" = [])))]
pub async fn payments(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    if q.interval.is_some() {
        return Err(ApiError::invalid(
            "parameter_invalid",
            Some("interval"),
            "payment analytics total the period; interval is for revenue",
        ));
    }
    let (from, to) = range(&q)?;
    let cur = currency(q.currency.as_deref())?;
    let position = wait_for(&state, "payments", q.min_position).await?;
    let end = to.succ_opt().unwrap_or(to);
    let days = state
        .read
        .docs_between("payments", &format!("day:{from}"), &format!("day:{end}"))
        .await?;
    let mut totals: BTreeMap<String, PaymentCounts> = BTreeMap::new();
    for (_, doc) in &days {
        let day: BTreeMap<String, PaymentCounts> = state_of(doc)?;
        for (c, counts) in day {
            if cur.as_ref().is_none_or(|want| *want == c) {
                totals.entry(c).or_default().merge(&counts);
            }
        }
    }
    let data: Vec<Value> = totals
        .into_iter()
        .map(|(currency, t)| {
            let mut reasons: Vec<(String, i64)> = t.failure_codes.into_iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let attempts = t.succeeded.saturating_add(t.failed);
            json!({
                "currency": currency, "attempts": attempts, "succeeded": t.succeeded,
                "failed": t.failed, "success_rate": rate(t.succeeded, attempts),
                "succeeded_amount": t.succeeded_amount, "failed_amount": t.failed_amount,
                "failure_reasons": reasons.into_iter()
                    .map(|(code, count)| json!({"code": code, "count": count}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = json!({"object": "payment_analytics", "from": q.from, "to": q.to, "data": data});
    Ok(answer(body, position))
}

/// The MRR totals and the movements per month, per currency.
async fn mrr_data(
    state: &AppState,
    q: &MrrQuery,
) -> Result<(i64, BTreeMap<String, (MrrTotal, Vec<(String, Movements)>)>), ApiError> {
    let cur = currency(q.currency.as_deref())?;
    let position = wait_for(state, "mrr", q.min_position).await?;
    let mut out: BTreeMap<String, (MrrTotal, Vec<(String, Movements)>)> = BTreeMap::new();
    if let Some(doc) = state.read.get("mrr", "total").await? {
        let totals: BTreeMap<String, MrrTotal> = state_of(&doc)?;
        for (c, t) in totals {
            out.entry(c).or_default().0 = t;
        }
    }
    for (id, doc) in state.read.docs_between("mrr", "month:", "month;").await? {
        let month = id.trim_start_matches("month:").to_string();
        let moves: BTreeMap<String, Movements> = state_of(&doc)?;
        for (c, m) in moves {
            out.entry(c).or_default().1.push((month.clone(), m));
        }
    }
    out.retain(|c, _| cur.as_ref().is_none_or(|want| want == c));
    Ok((position, out))
}

#[utoipa::path(get, path = "/v1/analytics/mrr", params(MrrQuery),
    responses((status = 200, description = "MRR per currency and its movements per month (new, expansion, contraction, churn, reactivation)")),
    security(("bearer" = [])))]
pub async fn mrr(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<MrrQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    let (position, data) = mrr_data(&state, &q).await?;
    let data: Vec<Value> = data
        .into_iter()
        .map(|(currency, (total, months))| {
            json!({
                "currency": currency, "mrr": total.mrr, "subscriptions": total.subscriptions,
                "movements": months.into_iter().map(|(month, m)| json!({
                    "month": month, "new": m.new, "expansion": m.expansion,
                    "contraction": m.contraction, "churn": m.churn,
                    "reactivation": m.reactivation, "net": m.net(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(answer(json!({"object": "mrr", "data": data}), position))
}

/// The `through` month: given (checked), or the current one.
fn through(state: &AppState, q: &MrrQuery) -> Result<String, ApiError> {
    match &q.through {
        None => Ok(state.clock.now().format("%Y-%m").to_string()),
        Some(t) => NaiveDate::parse_from_str(&format!("{t}-01"), "%Y-%m-%d")
            .map(|d| d.format("%Y-%m").to_string())
            .map_err(|_| {
                ApiError::invalid(
                    "through_invalid",
                    Some("through"),
                    "through must be a month like 2026-03",
                )
            }),
    }
}

/// `months` (sorted, `YYYY-MM`) with every calendar month from the first through `through`
/// present: a month without movement is a month with none (0 churn), not a missing one.
fn calendar(months: Vec<(String, Movements)>, through: &str) -> Vec<(String, Movements)> {
    let parse = |m: &str| -> Option<(i32, u32)> {
        let (y, mo) = m.split_once('-')?;
        Some((y.parse().ok()?, mo.parse().ok()?))
    };
    let Some(mut at) = months.first().and_then(|(m, _)| parse(m)) else {
        return months;
    };
    let last = months.last().and_then(|(m, _)| parse(m)).unwrap_or(at);
    let end = parse(through).map_or(last, |t| t.max(last));
    let mut given = months.into_iter().peekable();
    let mut out = Vec::new();
    while at <= end && out.len() < 1_200 {
        let key = format!("{:04}-{:02}", at.0, at.1);
        match given.peek() {
            Some((m, _)) if *m == key => out.extend(given.next()),
            _ => out.push((key, Movements::default())),
        }
        at = if at.1 == 12 {
            (at.0 + 1, 1)
        } else {
            (at.0, at.1 + 1)
        };
    }
    out
}

/// Per month: MRR and subscriptions at its start, and what churned in it.
struct ChurnMonth {
    month: String,
    mrr_start: i64,
    churned: i64,
    subscriptions_start: i64,
    subscriptions_churned: i64,
}

fn churn_months(months: &[(String, Movements)]) -> Vec<ChurnMonth> {
    let (mut mrr, mut subs) = (0i64, 0i64);
    months
        .iter()
        .map(|(month, m)| {
            let row = ChurnMonth {
                month: month.clone(),
                mrr_start: mrr,
                churned: m.churn,
                subscriptions_start: subs,
                subscriptions_churned: m.subscriptions_churned,
            };
            mrr = mrr.saturating_add(m.net());
            subs = subs
                .saturating_add(m.subscriptions_started)
                .saturating_sub(m.subscriptions_churned);
            row
        })
        .collect()
}

#[utoipa::path(get, path = "/v1/analytics/churn", params(MrrQuery),
    responses((status = 200, description = "per month: revenue churn (churned MRR / MRR at the month's start) and subscription churn")),
    security(("bearer" = [])))]
pub async fn churn(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<MrrQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    let through = through(&state, &q)?;
    let (position, data) = mrr_data(&state, &q).await?;
    let data: Vec<Value> = data
        .into_iter()
        .map(|(currency, (_, months))| {
            let rows: Vec<Value> = churn_months(&calendar(months, &through))
                .into_iter()
                .map(|c| {
                    json!({
                        "month": c.month, "mrr_start": c.mrr_start, "churned_mrr": c.churned,
                        "revenue_churn_rate": rate(c.churned, c.mrr_start),
                        "subscriptions_start": c.subscriptions_start,
                        "subscriptions_churned": c.subscriptions_churned,
                        "subscription_churn_rate": rate(c.subscriptions_churned, c.subscriptions_start),
                    })
                })
                .collect();
            json!({"currency": currency, "months": rows})
        })
        .collect();
    Ok(answer(json!({"object": "churn", "data": data}), position))
}

const FORECAST_METHOD: &str = "mrr_k = mrr_now × (1 − c)^k, rounded half-even to the minor unit, \
     where c is the mean monthly revenue churn rate (churned MRR / MRR at the month's start) of \
     the last 3 calendar months with MRR at their start, through the current month (a month \
     without churn counts as 0); new business and expansion are not forecast (a conservative \
     run-off of the current book).";

#[utoipa::path(get, path = "/v1/analytics/forecast", params(MrrQuery),
    responses((status = 200, description = "MRR for the next months from active subscriptions and trailing churn; the method is in the answer")),
    security(("bearer" = [])))]
pub async fn forecast(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<MrrQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let q = query(q)?;
    let months = q.months.unwrap_or(12);
    if !(1..=FORECAST_MONTHS_MAX).contains(&months) {
        return Err(ApiError::invalid(
            "months_invalid",
            Some("months"),
            format!("months must be 1 to {FORECAST_MONTHS_MAX}"),
        ));
    }
    let through = through(&state, &q)?;
    let (position, data) = mrr_data(&state, &q).await?;
    let mut out = Vec::new();
    for (currency, (total, history)) in data {
        let rows = churn_months(&calendar(history, &through));
        let trailing: Vec<Decimal> = rows
            .iter()
            .rev()
            .filter(|c| c.mrr_start > 0)
            .take(TRAILING_MONTHS)
            .map(|c| Decimal::from(c.churned) / Decimal::from(c.mrr_start))
            .collect();
        let c = if trailing.is_empty() {
            Decimal::ZERO
        } else {
            trailing.iter().sum::<Decimal>() / Decimal::from(trailing.len())
        };
        let keep = (Decimal::ONE - c).max(Decimal::ZERO);
        let mut factor = Decimal::ONE;
        let mut points = Vec::new();
        for k in 1..=months {
            factor = factor.checked_mul(keep).unwrap_or(Decimal::ZERO);
            let value = Decimal::from(total.mrr)
                .checked_mul(factor)
                .map(commands::pricing::round_minor)
                .and_then(Result::ok)
                .ok_or_else(|| ApiError::internal("forecast", &"overflow"))?;
            points.push(json!({"month": k, "mrr": value}));
        }
        out.push(json!({
            "currency": currency, "mrr_now": total.mrr,
            "monthly_churn_rate": c.round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven).to_string(),
            "months_of_history": trailing.len(), "forecast": points,
        }));
    }
    let body = json!({"object": "forecast", "method": FORECAST_METHOD, "data": out});
    Ok(answer(body, position))
}
