//! PayPal's OAuth2 access token (client credentials), cached until shortly before it expires.
//!
//! One token serves every call. Callers that find no fresh token wait for the one fetch in flight
//! instead of each fetching their own. A call answered 401 drops the token it used (only that
//! one: a newer token fetched meanwhile is kept), so the next call fetches a new one.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::gateway::GatewayError;

/// The answer of `POST /v1/oauth2/token` (the fields we use).
#[derive(Clone, Deserialize)]
pub(crate) struct TokenAnswer {
    /// The bearer token.
    pub access_token: String,
    /// Seconds it stays valid (PayPal gives 32400, nine hours).
    pub expires_in: u64,
}

/// An OAuth error answer: `{"error": "invalid_client", "error_description": "…"}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OauthError {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

/// How long a token given for `expires_in` seconds is used: until a tenth of its life (at most
/// five minutes) before it expires, so no call is sent with a token about to lapse.
pub fn refresh_after(expires_in: u64) -> Duration {
    let margin = (expires_in / 10).min(300);
    Duration::from_secs(expires_in.saturating_sub(margin))
}

/// A token endpoint's error answer: refused credentials are our configuration's fault
/// ([`GatewayError::Unauthorized`]: a charge stays pending), PayPal's failures retryable.
pub(crate) fn token_error(status: u16, e: &OauthError) -> GatewayError {
    let what = format!("paypal token {status} {}: {}", e.error, e.error_description);
    if status == 429 || status >= 500 {
        GatewayError::Unavailable(what)
    } else {
        GatewayError::Unauthorized(what)
    }
}

struct Cached {
    token: String,
    fresh_until: Instant,
}

/// The cached token.
#[derive(Default)]
pub(crate) struct TokenCache {
    slot: Mutex<Option<Cached>>,
}

impl TokenCache {
    /// The cached token while fresh; else the one `fetch` gets (`fetch` runs with the cache
    /// locked, so concurrent callers share it). `force` fetches even when a token is cached.
    pub async fn get<F, Fut>(&self, force: bool, fetch: F) -> Result<String, GatewayError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<TokenAnswer, GatewayError>>,
    {
        let mut slot = self.slot.lock().await;
        if !force
            && let Some(c) = slot.as_ref()
            && Instant::now() < c.fresh_until
        {
            return Ok(c.token.clone());
        }
        // Measured from before the request: the token's life started no earlier than this.
        let asked = Instant::now();
        let answer = fetch().await?;
        *slot = Some(Cached {
            token: answer.access_token.clone(),
            fresh_until: asked + refresh_after(answer.expires_in),
        });
        Ok(answer.access_token)
    }

    /// Drops `token` if it is still the cached one (PayPal refused it).
    pub async fn forget(&self, token: &str) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| c.token == token) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(token: &str, expires_in: u64) -> Result<TokenAnswer, GatewayError> {
        Ok(TokenAnswer {
            access_token: token.into(),
            expires_in,
        })
    }

    #[test]
    fn tokens_are_renewed_shortly_before_they_expire() {
        assert_eq!(refresh_after(32_400), Duration::from_secs(32_100));
        assert_eq!(refresh_after(600), Duration::from_secs(540));
        assert_eq!(refresh_after(10), Duration::from_secs(9));
        assert_eq!(refresh_after(0), Duration::ZERO);
    }

    #[test]
    fn refused_credentials_are_ours_to_fix_and_paypal_failures_retryable() {
        let e = OauthError {
            error: "invalid_client".into(),
            error_description: "Client Authentication failed".into(),
        };
        // Not a payment's fault: a charge stays pending until the credentials are fixed.
        assert!(matches!(
            token_error(401, &e),
            GatewayError::Unauthorized(_)
        ));
        assert!(matches!(
            token_error(400, &e),
            GatewayError::Unauthorized(_)
        ));
        assert!(token_error(503, &OauthError::default()).is_retryable());
        assert!(token_error(429, &OauthError::default()).is_retryable());
    }

    #[tokio::test]
    async fn a_cached_token_is_reused_until_forgotten_or_stale() {
        let cache = TokenCache::default();
        assert_eq!(
            cache
                .get(false, || async { answer("A", 3600) })
                .await
                .unwrap(),
            "A"
        );
        assert_eq!(
            cache
                .get(false, || async { answer("B", 3600) })
                .await
                .unwrap(),
            "A"
        );
        // Forgetting another token keeps this one.
        cache.forget("Z").await;
        assert_eq!(
            cache
                .get(false, || async { answer("B", 3600) })
                .await
                .unwrap(),
            "A"
        );
        cache.forget("A").await;
        assert_eq!(
            cache.get(false, || async { answer("B", 0) }).await.unwrap(),
            "B"
        );
        // A token with no life left is never reused.
        assert_eq!(
            cache
                .get(false, || async { answer("C", 3600) })
                .await
                .unwrap(),
            "C"
        );
        assert_eq!(
            cache
                .get(true, || async { answer("D", 3600) })
                .await
                .unwrap(),
            "D"
        );
        // A failed fetch leaves the cache as it was.
        let failed = cache
            .get(true, || async { Err(GatewayError::Timeout) })
            .await;
        assert_eq!(failed, Err(GatewayError::Timeout));
        assert_eq!(
            cache
                .get(false, || async { answer("E", 3600) })
                .await
                .unwrap(),
            "D"
        );
    }
}
