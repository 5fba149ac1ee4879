//! `POST /v1/plans` and `POST /v1/plans/{id}/archive`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use commands::charge::{IdempotencyDraft, Rendered};
use commands::plan::{NewPlan, Plan, PlanCommand, UsageType};
use commands::pricing::{Interval, Tier};
use ledger::ids::PlanId;
use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::command::{self, Outcome};
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    pub name: String,
    /// ISO-4217 code of the main price.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// Main price in minor units (0 for a free plan); leave it out with `tiers`.
    pub amount: Option<i64>,
    /// `day`, `week`, `month` or `year`.
    pub interval: String,
    /// Intervals per period (default 1; at most a year in all).
    pub interval_count: Option<u32>,
    /// `licensed` (default) or `metered`.
    #[schema(value_type = Option<String>)]
    pub usage_type: Option<UsageType>,
    /// Free trial for new subscriptions (default 0, at most 730).
    pub trial_days: Option<u32>,
    /// Prices in other currencies, e.g. `{"eur": 900}`.
    pub prices: Option<BTreeMap<String, i64>>,
    /// Graduated tiers instead of `amount`, e.g. `[{"up_to": 10, "unit_amount": 500},
    /// {"up_to": null, "unit_amount": 400, "flat_amount": 1000}]`: each unit is priced by the
    /// tier it falls in; a tier's flat fee comes with its first unit.
    #[schema(value_type = Option<Vec<Object>>)]
    pub tiers: Option<Vec<Tier>>,
}

/// The plan object (Stripe's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanObject {
    /// `plan_…`
    pub id: String,
    /// Always `plan`.
    pub object: &'static str,
    pub active: bool,
    pub name: String,
    pub amount: i64,
    pub currency: String,
    pub prices: BTreeMap<String, i64>,
    pub interval: String,
    pub interval_count: u32,
    /// `licensed` or `metered`.
    #[schema(value_type = String)]
    pub usage_type: UsageType,
    /// `per_unit` or `tiered` (graduated).
    pub billing_scheme: &'static str,
    #[schema(value_type = Vec<Object>)]
    pub tiers: Vec<Tier>,
    pub trial_period_days: u32,
    /// RFC 3339.
    pub created: String,
    pub livemode: bool,
}

pub fn render(plan: &Plan) -> Rendered {
    let object = PlanObject {
        id: plan.id.to_string(),
        object: "plan",
        active: plan.active,
        name: plan.name.clone(),
        amount: plan.price.amount_minor(),
        currency: plan.price.currency().code().to_string(),
        prices: plan.prices.clone(),
        interval: plan.interval.unit().to_string(),
        interval_count: plan.interval.count(),
        usage_type: plan.usage_type,
        billing_scheme: if plan.tiers.is_empty() {
            "per_unit"
        } else {
            "tiered"
        },
        tiers: plan.tiers.clone(),
        trial_period_days: plan.trial_days,
        created: plan
            .created
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        livemode: false,
    };
    Rendered {
        status: 200,
        body: serde_json::to_string(&object).unwrap_or_default(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/plans",
    request_body = CreatePlan,
    responses(
        (status = 200, description = "the new plan", body = PlanObject),
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
        "/v1/plans",
        &body,
        |ctx| async move {
            let new = new_plan(parse_json(&ctx.body)?, ctx.draft.as_ref())?;
            let id = new.plan_id;
            let command = PlanCommand::Create(new);
            let done = ctx
                .state
                .executor
                .execute::<Plan>(&id, command, &ctx.metadata, ctx.draft.as_ref(), &render)
                .await?;
            let rendered = render(&done.state);
            Ok(Outcome::from((done, rendered)))
        },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/plans/{id}/archive",
    params(("id" = String, Path, description = "`plan_…`")),
    responses(
        (status = 200, description = "the archived plan (archiving twice changes nothing)", body = PlanObject),
        (status = 404, description = "no such plan"),
    ),
    security(("bearer" = []))
)]
pub async fn archive(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id: PlanId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such plan"))?;
    let path = format!("/v1/plans/{id}/archive");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let command = PlanCommand::Archive;
        let done = ctx
            .state
            .executor
            .execute::<Plan>(&id, command, &ctx.metadata, ctx.draft.as_ref(), &render)
            .await?;
        let rendered = render(&done.state);
        Ok(Outcome::from((done, rendered)))
    })
    .await
}

fn new_plan(req: CreatePlan, draft: Option<&IdempotencyDraft>) -> Result<NewPlan, ApiError> {
    let currency = Currency::parse(&req.currency)
        .map_err(|e| ApiError::invalid("currency_invalid", Some("currency"), e.to_string()))?;
    let interval = Interval::parse(&req.interval, req.interval_count.unwrap_or(1))
        .map_err(|e| ApiError::invalid("parameter_invalid", Some("interval"), e.to_string()))?;
    let prices = req
        .prices
        .unwrap_or_default()
        .into_iter()
        .map(|(code, amount)| Currency::parse(&code).map(|c| Money::new(amount, c)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::invalid("currency_invalid", Some("prices"), e.to_string()))?;
    // Under an idempotency key the id is derived from it, so a retry lands on the same stream.
    let plan_id = match draft {
        Some(d) => PlanId::derived(&format!("{}:{}", d.api_key_id, d.key)),
        None => PlanId::new(),
    };
    let tiers = req.tiers.unwrap_or_default();
    let amount = match (req.amount, tiers.is_empty()) {
        (Some(a), _) => a,
        (None, false) => 0,
        (None, true) => {
            return Err(ApiError::invalid(
                "parameter_missing",
                Some("amount"),
                "amount is required (or tiers)",
            ));
        }
    };
    Ok(NewPlan {
        plan_id,
        name: req.name,
        price: Money::new(amount, currency),
        tiers,
        prices,
        interval,
        usage_type: req.usage_type.unwrap_or(UsageType::Licensed),
        trial_days: req.trial_days.unwrap_or(0),
    })
}
