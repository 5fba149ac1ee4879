//! Bearer API keys with scopes.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use ledger::access::{ApiKey, Scope, Secret};

use super::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

impl Caller {
    /// 403 unless the key's scope covers `needed`.
    pub fn require(&self, needed: Scope) -> Result<(), ApiError> {
        if self.0.scope.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this API key has scope `{}`; `{}` is required",
                self.0.scope, needed
            )))
        }
    }

    pub fn key_id(&self) -> String {
        self.0.id.to_string()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthenticated("missing `Authorization: Bearer <key>` header")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(|| ApiError::unauthenticated("expected `Authorization: Bearer <key>`"))?;
        let digest = Secret::from_presented(token).digest();
        if let Some(key) = state.key_cache.get(&digest) {
            return Ok(Caller(key));
        }
        match state.keys.find_active_key(digest).await? {
            Some(key) => {
                state.key_cache.put(digest, key.clone());
                Ok(Caller(key))
            }
            None => Err(ApiError::unauthenticated("invalid or revoked API key")),
        }
    }
}
