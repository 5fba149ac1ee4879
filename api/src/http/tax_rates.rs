//! `POST /v1/tax_rates`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use commands::charge::Rendered;
use commands::pricing::TaxRate as Rate;
use commands::tax_rate::{TaxRate, TaxRateCommand, TaxRateCreated};
use ledger::ids::TaxRateId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::command::{self, Outcome};
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaxRate {
    pub display_name: String,
    /// Decimal string, 0 to 100, at most 4 decimals (`"8.25"`).
    pub percentage: String,
    /// Whether prices already contain the tax.
    pub inclusive: bool,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub state: Option<String>,
}

/// The tax rate object (Stripe's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaxRateObject {
    /// `tr_…`
    pub id: String,
    /// Always `tax_rate`.
    pub object: &'static str,
    pub active: bool,
    pub display_name: String,
    /// Decimal string.
    pub percentage: String,
    pub inclusive: bool,
    pub country: String,
    pub state: Option<String>,
    /// RFC 3339.
    pub created: String,
    pub livemode: bool,
}

pub fn render(t: &TaxRate) -> Rendered {
    let object = TaxRateObject {
        id: t.id.to_string(),
        object: "tax_rate",
        active: true,
        display_name: t.display_name.clone(),
        percentage: t.rate.percentage().to_string(),
        inclusive: t.rate.is_inclusive(),
        country: t.country.clone(),
        state: t.state.clone(),
        created: t.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        livemode: false,
    };
    Rendered {
        status: 200,
        body: serde_json::to_string(&object).unwrap_or_default(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/tax_rates",
    request_body = CreateTaxRate,
    responses(
        (status = 200, description = "the new tax rate", body = TaxRateObject),
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
        "/v1/tax_rates",
        &body,
        |ctx| async move {
            let req: CreateTaxRate = parse_json(&ctx.body)?;
            let rate = Rate::new(&req.percentage, req.inclusive).map_err(|e| {
                ApiError::invalid("parameter_invalid", Some("percentage"), e.to_string())
            })?;
            let id = match &ctx.draft {
                Some(d) => TaxRateId::derived(&format!("{}:{}", d.api_key_id, d.key)),
                None => TaxRateId::new(),
            };
            let created = TaxRateCreated {
                tax_rate_id: id,
                display_name: req.display_name,
                rate,
                country: req.country,
                state: req.state,
            };
            let command = TaxRateCommand::Create(created);
            let done = ctx
                .state
                .executor
                .execute::<TaxRate>(&id, command, &ctx.metadata, ctx.draft.as_ref(), &render)
                .await?;
            let rendered = render(&done.state);
            Ok(Outcome::from((done, rendered)))
        },
    )
    .await
}
