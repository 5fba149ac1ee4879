//! `POST /payment/stripe/test` (the seed's): which payment mode this server is in, and whether
//! the configured Stripe API answers.

use axum::Json;
use axum::extract::State;
use ledger::access::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct StripeCheck {
    /// `sandbox` (no Stripe key), `test` (`sk_test_…`) or `live` (`sk_live_…`), or `unknown`.
    pub mode: &'static str,
    pub stripe_key_configured: bool,
    /// The default gateway: where bare tokens are charged.
    pub gateway: &'static str,
    /// The Stripe API base in use (`STRIPE_API_BASE`); `null` in sandbox mode.
    pub api_base: Option<String>,
    /// Whether Stripe answered `GET /v1/customers?limit=1` with this key; `null` in sandbox mode.
    pub reachable: Option<bool>,
    pub message: String,
}

/// Reports the Stripe configuration (never the key) and checks that Stripe answers.
#[utoipa::path(post, path = "/payment/stripe/test", responses((status = 200, body = StripeCheck)), security(("bearer" = [])))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StripeCheck>, ApiError> {
    caller.require(Scope::Read)?;
    let gateway = state.gateways.default_gateway().name();
    let Some(stripe) = &state.stripe else {
        return Ok(Json(StripeCheck {
            mode: "sandbox",
            stripe_key_configured: false,
            gateway,
            api_base: None,
            reachable: None,
            message: "no STRIPE_SECRET_KEY: charges go to the built-in sandbox gateway (tok_visa, tok_chargeDeclined, …)".into(),
        }));
    };
    let config = stripe.config();
    let (reachable, message) = match stripe.ping().await {
        Ok(()) => (true, "Stripe answered with this key".to_string()),
        Err(e) => (false, format!("Stripe did not answer as expected: {e}")),
    };
    Ok(Json(StripeCheck {
        mode: config.mode(),
        stripe_key_configured: true,
        gateway,
        api_base: Some(config.api_base.clone()),
        reachable: Some(reachable),
        message,
    }))
}
