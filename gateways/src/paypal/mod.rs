//! [`PaypalGateway`]: charges of vaulted PayPal payment sources as Orders v2 (created, then
//! captured), refunds of their captures, webhook verification, over reqwest.
//!
//! - Every call carries an OAuth2 bearer token (client credentials, `POST /v1/oauth2/token`),
//!   cached until shortly before it expires; a 401 drops it and the call is sent once more with a
//!   new one.
//! - A charge is `POST /v2/checkout/orders` (intent `CAPTURE`, the vault id as
//!   `payment_source.paypal.vault_id`, our idempotency key as the purchase unit's `custom_id`,
//!   which webhooks name our charge by), then `POST /v2/checkout/orders/{id}/capture`. The two
//!   steps carry `PayPal-Request-Id: <key>:order` and `<key>:capture`, so a retry with the same
//!   key finds the same order and the same capture. If PayPal completes the order at creation
//!   (single-step vault payments), its capture is read from the order and no capture is sent.
//! - A refund is `POST /v2/payments/captures/{id}/refund` under `PayPal-Request-Id: <key>`.
//! - One attempt per call: the charge service retries timeouts and 5xx itself, with backoff and
//!   the same key, and the recovery task calls again after a crash. PayPal keeps request ids for
//!   6 hours by default (up to 72 on request).
//! - PayPal answers a repeated request id with the first request's result, whatever the new one
//!   says; an answer for another amount or key is refused here as a reuse of the key.
//! - Declines (a 422 whose issue declines the payment source, an order that needs the payer's
//!   action, or a capture `DECLINED`/`FAILED`) are outcomes; a capture `PENDING` is not final
//!   (retryable: the webhook settles it); 5xx, 409, 429, timeouts and connection errors are
//!   retryable; other 4xx are final.
//! - Amounts are decimal strings with the currency's ISO-4217 decimals (see [`amount`]). PayPal
//!   itself wants no decimals for HUF and TWD and supports only some currencies: it refuses
//!   those it does not take (a final 422).
//!
//! TLS: reqwest with rustls on the ring provider ([`crate::tls`]); `http://` bases (a local
//! stand-in) work too.

pub mod amount;
mod http;
pub mod ids;
mod outcome;
mod token;
pub mod webhook;
mod wire;

use std::time::Duration;

pub use http::TOKEN_PATH;
pub use outcome::{
    DECLINE_ISSUES, ErrorBody, ErrorDetail, error_only, failure_code, from_capture, from_error,
    is_decline, verification,
};
pub use token::refresh_after;
pub use webhook::PaypalSignatureHeaders;

use self::amount::PaypalAmount;
use self::http::{Answer, parse};
use self::token::TokenCache;
use self::wire::{Order, Refund};
use crate::gateway::{
    ChargeOutcome, ChargeRequest, Gateway, GatewayError, RefundOutcome, RefundRequest,
};

/// PayPal's live API.
pub const DEFAULT_API_BASE: &str = "https://api-m.paypal.com";
/// PayPal's sandbox API.
pub const SANDBOX_API_BASE: &str = "https://api-m.sandbox.paypal.com";
/// How long one HTTP request may take before its outcome counts as unknown.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach PayPal.
#[derive(Clone)]
pub struct PaypalConfig {
    /// The REST app's client id (`PAYPAL_CLIENT_ID`).
    pub client_id: String,
    /// The REST app's secret (`PAYPAL_CLIENT_SECRET`); never printed.
    pub client_secret: String,
    /// [`DEFAULT_API_BASE`], [`SANDBOX_API_BASE`] or a stand-in's address.
    pub api_base: String,
    /// Per HTTP request (a charge makes two, plus a token fetch now and then).
    pub timeout: Duration,
}

impl PaypalConfig {
    /// PayPal's live API, with the default timeout.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            api_base: DEFAULT_API_BASE.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// PayPal's sandbox, with the default timeout.
    pub fn sandbox(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            api_base: SANDBOX_API_BASE.into(),
            ..Self::new(client_id, client_secret)
        }
    }
}

impl std::fmt::Debug for PaypalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaypalConfig")
            .field("client_id", &self.client_id)
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// PayPal through its REST API.
pub struct PaypalGateway {
    http: reqwest::Client,
    config: PaypalConfig,
    /// `config.api_base` without a trailing `/`.
    base: String,
    tokens: TokenCache,
}

impl PaypalGateway {
    /// A client for `config`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(config: PaypalConfig) -> Result<Self, GatewayError> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| GatewayError::InvalidRequest(format!("paypal client: {e}")))?;
        Ok(Self {
            http,
            base: config.api_base.trim_end_matches('/').to_string(),
            config,
            tokens: TokenCache::default(),
        })
    }

    /// The configuration (its `Debug` leaves the secret out).
    pub fn config(&self) -> &PaypalConfig {
        &self.config
    }

    /// Whether PayPal gives a token for these credentials (a new one, kept for later calls).
    ///
    /// # Errors
    /// [`GatewayError::InvalidRequest`] when PayPal refuses the credentials; what the call failed
    /// with otherwise.
    pub async fn ping(&self) -> Result<(), GatewayError> {
        self.token(true).await.map(|_| ())
    }

    /// The capture step of a charge whose order PayPal created as `order`.
    async fn capture(
        &self,
        req: &ChargeRequest,
        order: &Order,
    ) -> Result<ChargeOutcome, GatewayError> {
        let id = ids::checked_id(&order.id, "order")?;
        let request_id = ids::request_id(&req.idempotency_key, ":capture")?;
        let path = format!("/v2/checkout/orders/{id}/capture");
        match self.call(&path, Some(&request_id), "{}".into()).await? {
            Answer::Done(body) => {
                let captured: Order = parse(&body)?;
                outcome::check_order(&captured, req.amount, &req.idempotency_key)?;
                match captured.capture() {
                    Some(capture) => outcome::settled(capture, req.amount),
                    None => Err(GatewayError::Unavailable(format!(
                        "paypal order {id} is {} with no capture",
                        captured.status
                    ))),
                }
            }
            Answer::Refused(status, e) => outcome::from_error(status, &e, id),
        }
    }
}

#[async_trait::async_trait]
impl Gateway for PaypalGateway {
    fn name(&self) -> &'static str {
        "paypal"
    }

    /// PayPal keeps a `PayPal-Request-Id` for 6 hours unless asked to keep it longer.
    fn idempotency_window(&self) -> Option<Duration> {
        Some(Duration::from_secs(6 * 3600))
    }

    async fn charge(&self, req: ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let amount = PaypalAmount::of(req.amount)?;
        let vault_id = ids::checked_id(&req.payment_method, "vault id")?;
        // The longer id first: a key that fits it fits the other (and PayPal's `custom_id`).
        ids::request_id(&req.idempotency_key, ":capture")?;
        let request_id = ids::request_id(&req.idempotency_key, ":order")?;
        let body = wire::order_body(&req, &amount, vault_id).to_string();
        let order: Order = match self
            .call("/v2/checkout/orders", Some(&request_id), body)
            .await?
        {
            Answer::Done(body) => parse(&body)?,
            Answer::Refused(status, e) => return outcome::from_error(status, &e, ""),
        };
        outcome::check_order(&order, req.amount, &req.idempotency_key)?;
        if let Some(declined) = outcome::awaiting_payer(&order) {
            return Ok(declined);
        }
        match order.capture() {
            Some(capture) => outcome::settled(capture, req.amount),
            None => self.capture(&req, &order).await,
        }
    }

    async fn refund(&self, req: RefundRequest) -> Result<RefundOutcome, GatewayError> {
        let amount = PaypalAmount::of(req.amount)?;
        let capture = ids::checked_id(&req.gateway_charge_id, "capture")?;
        let request_id = ids::request_id(&req.idempotency_key, "")?;
        let path = format!("/v2/payments/captures/{capture}/refund");
        let body = wire::refund_body(&amount, &req.idempotency_key).to_string();
        let refund: Refund = self.call(&path, Some(&request_id), body).await?.read()?;
        outcome::refunded(&refund, req.amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_never_prints_the_secret() {
        let c = PaypalConfig::sandbox("AbC-client", "EHs3cr3t-value");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("AbC-client") && shown.contains(SANDBOX_API_BASE),
            "{shown}"
        );
        assert!(!shown.contains("EHs3cr3t"), "{shown}");
        assert_eq!(PaypalConfig::new("a", "b").api_base, DEFAULT_API_BASE);
    }

    #[test]
    fn the_gateway_is_named_paypal_and_its_base_has_no_trailing_slash() {
        let g = PaypalGateway::new(PaypalConfig {
            api_base: "http://127.0.0.1:9/".into(),
            ..PaypalConfig::new("a", "b")
        })
        .unwrap();
        assert_eq!(g.name(), "paypal");
        assert_eq!(g.base, "http://127.0.0.1:9");
    }
}
