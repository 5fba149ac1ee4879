//! `POST /payment/stripe/test` (the seed's): which payment mode this server is in.

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
    /// The gateway charges go to right now.
    pub gateway: &'static str,
    /// Whether Stripe answered; `null` when not checked.
    pub reachable: Option<bool>,
    pub message: &'static str,
}

/// Reports the Stripe configuration (never the key). This build has only the sandbox gateway, so
/// a configured key is reported but not used, and reachability is not checked.
#[utoipa::path(post, path = "/payment/stripe/test", responses((status = 200, body = StripeCheck)), security(("bearer" = [])))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<StripeCheck>, ApiError> {
    caller.require(Scope::Read)?;
    let key = std::env::var("STRIPE_SECRET_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let mode = match key.as_deref() {
        None => "sandbox",
        Some(k) if k.starts_with("sk_test_") || k.starts_with("rk_test_") => "test",
        Some(k) if k.starts_with("sk_live_") || k.starts_with("rk_live_") => "live",
        Some(_) => "unknown",
    };
    let message = if key.is_some() {
        "STRIPE_SECRET_KEY is set, but this build charges through the sandbox gateway only"
    } else {
        "no STRIPE_SECRET_KEY: charges go to the built-in sandbox gateway (tok_visa, tok_chargeDeclined, …)"
    };
    Ok(Json(StripeCheck {
        mode,
        stripe_key_configured: key.is_some(),
        gateway: state.gateway.name(),
        reachable: None,
        message,
    }))
}
