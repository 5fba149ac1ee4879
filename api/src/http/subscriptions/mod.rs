//! Subscriptions: `POST /v1/subscriptions` (and the seed's `POST /subscriptions/create`),
//! `POST /v1/subscriptions/{id}` (plan or quantity change with proration), `…/cancel`,
//! `…/pause`, `…/resume`, `…/usage`, and `GET /v1/subscriptions/{id}`.
//!
//! A subscription of a customer on a test clock lives at the clock's time.

pub mod object;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use commands::billing::Subscribe;
use commands::plan::{Plan, PlanError};
use commands::subscription::{
    PlanSnapshot, ProrationBehavior, Subscription, SubscriptionCommand, SubscriptionError,
    UsageAction,
};
use ledger::access::Scope;
use ledger::ids::{CustomerId, PlanId, SubscriptionId};
use serde::Deserialize;
use utoipa::ToSchema;

use self::object::{SubscriptionObject, render};
use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::command::{self, Ctx, Failure, Outcome};
use super::error::ApiError;
use super::respond::json_text;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// `cus_…`
    pub customer_id: String,
    /// `plan_…`
    pub plan_id: String,
    /// Units (default 1; metered plans: 1).
    pub quantity: Option<u32>,
    /// Overrides the plan's free trial.
    pub trial_days: Option<u32>,
    /// A future instant within one interval: the first period until then is prorated.
    pub billing_cycle_anchor: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscription {
    /// A plan with the same interval, currency and usage type.
    pub plan_id: Option<String>,
    pub quantity: Option<u32>,
    /// `create_prorations` (default), `none` or `always_invoice`.
    #[schema(value_type = Option<String>)]
    pub proration_behavior: Option<ProrationBehavior>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelSubscription {
    /// Cancel when the current period ends instead of now.
    pub at_period_end: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordUsage {
    /// Units (≥ 0).
    pub quantity: i64,
    /// When it happened (default: now); within the current period.
    pub timestamp: Option<DateTime<Utc>>,
    /// `increment` (default) or `set`.
    #[schema(value_type = Option<String>)]
    pub action: Option<UsageAction>,
}

fn parse_id<T: std::str::FromStr>(id: &str, what: &str) -> Result<T, ApiError> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("no such {what}")))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    request_body = CreateSubscription,
    responses(
        (status = 200, description = "the subscription after its first invoice was paid (or failed: then `past_due`); a replay answers it as first created", body = SubscriptionObject),
        (status = 400, description = "invalid request, archived plan, no price in the customer's currency; nothing recorded"),
        (status = 404, description = "no such customer or plan"),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    create_at(state, caller, headers, body, "/v1/subscriptions").await
}

/// The seed's `POST /subscriptions/create`: the same as `POST /v1/subscriptions`.
#[utoipa::path(
    post,
    path = "/subscriptions/create",
    request_body = CreateSubscription,
    responses((status = 200, description = "as POST /v1/subscriptions", body = SubscriptionObject)),
    security(("bearer" = []))
)]
pub async fn create_seed(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    create_at(state, caller, headers, body, "/subscriptions/create").await
}

async fn create_at(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    path: &'static str,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    command::run(&state, &caller, &headers, path, &body, |ctx| async move {
        let req: CreateSubscription = parse_json(&ctx.body)?;
        let customer_id: CustomerId = req
            .customer_id
            .parse()
            .map_err(|_| ApiError::not_found("no such customer"))?;
        let plan_id: PlanId = req
            .plan_id
            .parse()
            .map_err(|_| ApiError::not_found("no such plan"))?;
        let subscription_id = match &ctx.draft {
            Some(d) => SubscriptionId::derived(&format!("{}:{}", d.api_key_id, d.key)),
            None => SubscriptionId::new(),
        };
        let subscribe = Subscribe {
            subscription_id,
            customer_id,
            plan_id,
            quantity: req.quantity,
            trial_days: req.trial_days,
            billing_cycle_anchor: req.billing_cycle_anchor,
        };
        let done = ctx
            .state
            .billing
            .subscribe(subscribe, &ctx.metadata, ctx.draft.as_ref(), &render)
            .await?;
        let rendered = render(&done.state);
        Ok(Outcome::from((done, rendered)))
    })
    .await
}

/// Runs `command` (built once the subscription is known) on subscription `id`.
async fn run_command(
    ctx: Ctx,
    id: SubscriptionId,
    command: SubscriptionCommand,
) -> Result<Outcome, Failure> {
    let done = ctx
        .state
        .billing
        .command_subscription(id, command, &ctx.metadata, ctx.draft.as_ref(), &render)
        .await?;
    let rendered = render(&done.state);
    Ok(Outcome::from((done, rendered)))
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}",
    request_body = UpdateSubscription,
    params(("id" = String, Path, description = "`sub_…`")),
    responses(
        (status = 200, description = "the changed subscription; with `always_invoice` the proration is invoiced and charged now", body = SubscriptionObject),
        (status = 404, description = "no such subscription or plan"),
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
    let id: SubscriptionId = parse_id(&id, "subscription")?;
    let path = format!("/v1/subscriptions/{id}");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let req: UpdateSubscription = parse_json(&ctx.body)?;
        let plan = match req.plan_id {
            None => None,
            Some(p) => Some(snapshot(&ctx, id, parse_id(&p, "plan")?).await?),
        };
        let command = SubscriptionCommand::Change {
            plan,
            quantity: req.quantity,
            proration_behavior: req
                .proration_behavior
                .unwrap_or(ProrationBehavior::CreateProrations),
        };
        run_command(ctx, id, command).await
    })
    .await
}

/// The new plan as the subscription would bill it: its price in the subscription's currency.
async fn snapshot(ctx: &Ctx, id: SubscriptionId, plan_id: PlanId) -> Result<PlanSnapshot, Failure> {
    let executor = &ctx.state.executor;
    let sub = load(&ctx.state, id).await?;
    let plan = executor
        .load::<Plan>(&plan_id)
        .await
        .map_err(commands::CommandError::from)?
        .state
        .ok_or(commands::CommandError::from(PlanError::NotFound))?;
    if !plan.active {
        return Err(
            ApiError::invalid("plan_archived", Some("plan_id"), "the plan is archived").into(),
        );
    }
    let price = plan.price_in(sub.currency()).ok_or_else(|| {
        ApiError::invalid(
            "plan_incompatible",
            Some("plan_id"),
            format!("the plan has no price in {}", sub.currency().code()),
        )
    })?;
    Ok(PlanSnapshot {
        plan_id,
        name: plan.name,
        price,
        interval: plan.interval,
        usage_type: plan.usage_type,
        tiers: plan.tiers,
    })
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/cancel",
    request_body = CancelSubscription,
    params(("id" = String, Path, description = "`sub_…`")),
    responses(
        (status = 200, description = "canceled now (no refund of unused time; metered usage so far is invoiced), or at period end", body = SubscriptionObject),
        (status = 404, description = "no such subscription"),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id: SubscriptionId = parse_id(&id, "subscription")?;
    let path = format!("/v1/subscriptions/{id}/cancel");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let req: CancelSubscription = if ctx.body.iter().all(u8::is_ascii_whitespace) {
            CancelSubscription::default()
        } else {
            parse_json(&ctx.body)?
        };
        let command = SubscriptionCommand::Cancel {
            at_period_end: req.at_period_end.unwrap_or(false),
        };
        run_command(ctx, id, command).await
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/pause",
    params(("id" = String, Path, description = "`sub_…`")),
    responses((status = 200, description = "collection paused: periods advance, nothing is billed", body = SubscriptionObject)),
    security(("bearer" = []))
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    simple(
        state,
        caller,
        headers,
        id,
        body,
        "pause",
        SubscriptionCommand::Pause,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/resume",
    params(("id" = String, Path, description = "`sub_…`")),
    responses((status = 200, description = "collection resumed", body = SubscriptionObject)),
    security(("bearer" = []))
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    simple(
        state,
        caller,
        headers,
        id,
        body,
        "resume",
        SubscriptionCommand::Resume,
    )
    .await
}

async fn simple(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    id: String,
    body: Result<Bytes, BytesRejection>,
    action: &str,
    command: SubscriptionCommand,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id: SubscriptionId = parse_id(&id, "subscription")?;
    let path = format!("/v1/subscriptions/{id}/{action}");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        run_command(ctx, id, command).await
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/usage",
    request_body = RecordUsage,
    params(("id" = String, Path, description = "`sub_…`")),
    responses(
        (status = 200, description = "usage recorded; billed in arrears at renewal", body = SubscriptionObject),
        (status = 400, description = "not metered, negative, or outside the current period"),
    ),
    security(("bearer" = []))
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id: SubscriptionId = parse_id(&id, "subscription")?;
    let path = format!("/v1/subscriptions/{id}/usage");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let req: RecordUsage = parse_json(&ctx.body)?;
        // The default timestamp is the subscription's own time (its test clock's).
        let sub = load(&ctx.state, id).await?;
        let customer = ctx.state.customers.load(sub.customer_id).await?;
        let now = ctx
            .state
            .billing
            .for_customer(&customer.customer)
            .await?
            .now();
        let command = SubscriptionCommand::RecordUsage {
            quantity: req.quantity,
            timestamp: req.timestamp.unwrap_or(now),
            action: req.action.unwrap_or(UsageAction::Increment),
        };
        run_command(ctx, id, command).await
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}",
    params(("id" = String, Path, description = "`sub_…`")),
    responses(
        (status = 200, description = "the subscription, from its own stream", body = SubscriptionObject),
        (status = 404, description = "no such subscription"),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read)?;
    let id: SubscriptionId = parse_id(&id, "subscription")?;
    let sub = load(&state, id).await?;
    let r = render(&sub);
    Ok(json_text(r.status, r.body))
}

/// The subscription as recorded, or `NotFound` (404).
async fn load(
    state: &AppState,
    id: SubscriptionId,
) -> Result<Subscription, commands::CommandError> {
    Ok(state
        .executor
        .load::<Subscription>(&id)
        .await?
        .state
        .ok_or(SubscriptionError::NotFound)?)
}
