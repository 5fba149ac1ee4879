//! [`StripeGateway`]: charges as PaymentIntents confirmed at creation, refunds of them, through
//! async-stripe.
//!
//! - A charge is `POST /v1/payment_intents` with `confirm=true`, the token as `payment_method`
//!   (`pm_…`, or a `tok_…` Stripe turns into one), `off_session=true` for renewals and scheduled
//!   invoice payments, our idempotency key in `metadata[billing_key]` (webhooks name the charge
//!   by it) and our customer id in `metadata[customer_id]`.
//! - An authorization (when our fraud rules want Stripe Radar's risk level before money moves)
//!   is the same PaymentIntent with `capture_method=manual` and `expand[]=latest_charge`: it
//!   stops at `requires_capture` with the charge's `outcome.risk_level`; then
//!   `POST /v1/payment_intents/{id}/capture` takes the money or `…/cancel`
//!   (`cancellation_reason=fraudulent`) releases it.
//! - A refund is `POST /v1/refunds` of the PaymentIntent (or of a `ch_…` charge).
//! - Every mutating call carries our idempotency key as `Idempotency-Key`, set per request (a
//!   client-wide key would be reused for every call), one attempt per call: the charge service
//!   retries timeouts and 5xx itself, with backoff and the same key, and the recovery task calls
//!   again after a crash; Stripe answers a repeated key with the first answer.
//! - Declines (402 `card_error`, or a PaymentIntent left in `requires_payment_method`) are
//!   outcomes; 5xx, 409, 429, timeouts and connection errors are retryable; other 4xx are final.

mod outcome;

use std::collections::HashMap;
use std::time::Duration;

use ::stripe::{
    Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest,
};
use ledger::money::Currency;

use stripe_core::PaymentIntentCaptureMethod;
use stripe_core::customer::{CreateCustomer, ListCustomer};
use stripe_core::payment_intent::{
    CancelPaymentIntent, CancelPaymentIntentCancellationReason, CapturePaymentIntent,
    CreatePaymentIntent, CreatePaymentIntentOffSession, SearchPaymentIntent,
};
use stripe_core::refund::CreateRefund;
use stripe_payment::payment_method::AttachPaymentMethod;

pub use outcome::{ErrorParts, failure_code};

use crate::gateway::{
    CaptureRequest, ChargeOutcome, ChargeRequest, Gateway, GatewayError, LinkOutcome, LinkRequest,
    Lookup, RefundOutcome, RefundRequest,
};

/// Stripe's API.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com/";
/// How long one call may take before its outcome counts as unknown.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how to reach Stripe.
#[derive(Clone)]
pub struct StripeConfig {
    /// `sk_test_…`, `sk_live_…` (or a restricted `rk_…` key).
    pub secret_key: String,
    /// `STRIPE_API_BASE`; [`DEFAULT_API_BASE`] when unset.
    pub api_base: String,
    /// Per call.
    pub timeout: Duration,
}

impl StripeConfig {
    /// Stripe itself, with the default timeout.
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            api_base: DEFAULT_API_BASE.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `test`, `live` (by the key's prefix) or `unknown`.
    pub fn mode(&self) -> &'static str {
        let k = self.secret_key.as_str();
        if k.starts_with("sk_test_") || k.starts_with("rk_test_") {
            "test"
        } else if k.starts_with("sk_live_") || k.starts_with("rk_live_") {
            "live"
        } else {
            "unknown"
        }
    }
}

impl std::fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConfig")
            .field("mode", &self.mode())
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Stripe through async-stripe.
pub struct StripeGateway {
    client: Client,
    config: StripeConfig,
}

impl StripeGateway {
    /// A client for `config`.
    ///
    /// # Errors
    /// The client cannot be built (an invalid key or base URL).
    pub fn new(config: StripeConfig) -> Result<Self, GatewayError> {
        let mut base = config.api_base.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let client = ClientBuilder::new(config.secret_key.clone())
            .url(base)
            .timeout(config.timeout)
            .request_strategy(RequestStrategy::Once)
            .build()
            .map_err(|e| GatewayError::InvalidRequest(format!("stripe client: {e}")))?;
        Ok(Self { client, config })
    }

    /// The configuration (never print the key: its `Debug` leaves it out).
    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// Whether Stripe answers with this key: `GET /v1/customers?limit=1`.
    ///
    /// # Errors
    /// What the call failed with.
    pub async fn ping(&self) -> Result<(), GatewayError> {
        ListCustomer::new()
            .limit(1)
            .customize()
            .send(&self.client)
            .await
            .map(|_| ())
            .map_err(|e| call_error(&e))
    }
}

fn idempotent(key: &str) -> Result<RequestStrategy, GatewayError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| GatewayError::InvalidRequest(format!("idempotency key: {e}")))
}

fn stripe_currency(c: Currency) -> stripe_types::Currency {
    match c.code().to_ascii_lowercase().parse() {
        Ok(c) => c,
        Err(never) => match never {},
    }
}

fn parts(errors: &::stripe::ApiErrors, status: u16) -> ErrorParts {
    ErrorParts {
        status,
        type_: errors.type_.as_str().to_string(),
        code: errors.code.as_ref().map(|c| c.as_str().to_string()),
        decline_code: errors.decline_code.clone(),
        message: errors.message.clone(),
        payment_intent: errors.payment_intent.as_ref().map(|p| p.id.to_string()),
    }
}

/// A call that got no usable answer. An answer we cannot read is treated like no answer: the
/// same key asked again gets the same answer, and the charge stays pending meanwhile.
fn call_error(e: &StripeError) -> GatewayError {
    match e {
        StripeError::Stripe(errors, status) => outcome::error_only(&parts(errors, *status)),
        StripeError::Timeout => GatewayError::Timeout,
        // hyper's legacy client says `client error (Connect)` when no connection was made.
        StripeError::ClientError(m) if m.contains("(Connect)") => {
            GatewayError::Unreachable(format!("stripe: {m}"))
        }
        StripeError::ClientError(m) | StripeError::JSONDeserialize(m) => {
            GatewayError::Unavailable(format!("stripe: {m}"))
        }
        StripeError::ConfigError(m) => GatewayError::InvalidRequest(format!("stripe: {m}")),
    }
}

#[async_trait::async_trait]
impl Gateway for StripeGateway {
    fn name(&self) -> &'static str {
        "stripe"
    }

    /// Stripe keeps idempotency keys for at least 24 hours.
    fn idempotency_window(&self) -> Option<Duration> {
        Some(Duration::from_secs(24 * 3600))
    }

    async fn charge(&self, req: ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        self.create_intent(req, false).await
    }

    fn authorizes(&self) -> bool {
        true
    }

    async fn authorize(&self, req: ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        self.create_intent(req, true).await
    }

    async fn capture(&self, req: CaptureRequest) -> Result<ChargeOutcome, GatewayError> {
        let sent = CapturePaymentIntent::new(req.gateway_charge_id.as_str())
            .amount_to_capture(req.amount.amount_minor())
            .customize()
            .request_strategy(idempotent(&req.idempotency_key)?)
            .send(&self.client)
            .await;
        answered(sent)
    }

    async fn void(&self, req: CaptureRequest) -> Result<(), GatewayError> {
        CancelPaymentIntent::new(req.gateway_charge_id.as_str())
            .cancellation_reason(CancelPaymentIntentCancellationReason::Fraudulent)
            .customize()
            .request_strategy(idempotent(&req.idempotency_key)?)
            .send(&self.client)
            .await
            .map(|_| ())
            .map_err(|e| call_error(&e))
    }

    /// Searches PaymentIntents by `metadata['billing_key']` (Stripe's search is current within
    /// about a minute; it is asked only about charges a day old).
    async fn find_charge(&self, idempotency_key: &str) -> Result<Lookup, GatewayError> {
        if idempotency_key.contains(['\'', '\\']) {
            return Err(GatewayError::InvalidRequest("key not searchable".into()));
        }
        let found =
            SearchPaymentIntent::new(format!("metadata['billing_key']:'{idempotency_key}'"))
                .limit(1)
                // An authorization's risk level is on its charge.
                .expand(vec!["data.latest_charge".to_string()])
                .customize()
                .send(&self.client)
                .await
                .map_err(|e| call_error(&e))?;
        let Some(pi) = found.data.into_iter().next() else {
            return Ok(Lookup::NotFound);
        };
        intent_outcome(&pi).map(Lookup::Found)
    }

    /// A `pm_…` is attached to a Stripe Customer (made once per customer of ours, under the key
    /// `customer-<ours>`), so it can be charged off-session; a `tok_…` is single-use and passed
    /// at the charge, so nothing is linked.
    async fn link(&self, req: LinkRequest) -> Result<LinkOutcome, GatewayError> {
        if !req.payment_method.starts_with("pm_") {
            return Ok(LinkOutcome::default());
        }
        let customer = match req.gateway_customer {
            Some(c) => c,
            None => CreateCustomer::new()
                .metadata(HashMap::from([(
                    "billing_customer".to_string(),
                    req.customer_ref.clone(),
                )]))
                .customize()
                .request_strategy(idempotent(&format!("customer-{}", req.customer_ref))?)
                .send(&self.client)
                .await
                .map_err(|e| call_error(&e))?
                .id
                .to_string(),
        };
        let key = format!("attach-{}-{}", req.customer_ref, req.payment_method);
        let pm = AttachPaymentMethod::new(req.payment_method.as_str())
            .customer(customer.clone())
            .customize()
            .request_strategy(idempotent(&key)?)
            .send(&self.client)
            .await
            .map_err(|e| call_error(&e))?;
        Ok(LinkOutcome {
            gateway_customer: Some(customer),
            country: pm.card.and_then(|c| c.country),
        })
    }

    async fn refund(&self, req: RefundRequest) -> Result<RefundOutcome, GatewayError> {
        let mut create = CreateRefund::new()
            .amount(req.amount.amount_minor())
            .metadata(HashMap::from([(
                "billing_key".to_string(),
                req.idempotency_key.clone(),
            )]));
        create = if req.gateway_charge_id.starts_with("ch_") {
            create.charge(req.gateway_charge_id.clone())
        } else {
            create.payment_intent(req.gateway_charge_id.clone())
        };
        let refund = create
            .customize()
            .request_strategy(idempotent(&req.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(|e| call_error(&e))?;
        match refund.status.as_deref() {
            Some("failed" | "canceled") => Err(GatewayError::InvalidRequest(format!(
                "stripe refund {} {}",
                refund.id.as_str(),
                refund.status.as_deref().unwrap_or_default()
            ))),
            _ => Ok(RefundOutcome {
                gateway_refund_id: refund.id.to_string(),
            }),
        }
    }
}

impl StripeGateway {
    /// `POST /v1/payment_intents`, confirmed at once; `manual`: authorized only, with its
    /// charge (and so its risk level) expanded.
    async fn create_intent(
        &self,
        req: ChargeRequest,
        manual: bool,
    ) -> Result<ChargeOutcome, GatewayError> {
        let mut create = CreatePaymentIntent::new(
            req.amount.amount_minor(),
            stripe_currency(req.amount.currency()),
        )
        .confirm(true)
        .payment_method(req.payment_method.clone());
        if manual {
            create = create
                .capture_method(PaymentIntentCaptureMethod::Manual)
                .expand(vec!["latest_charge".to_string()]);
        }
        if req.off_session {
            create = create.off_session(CreatePaymentIntentOffSession::Bool(true));
        }
        if let Some(d) = &req.description {
            create = create.description(d.clone());
        }
        if let Some(c) = &req.gateway_customer {
            create = create.customer(c.clone());
        }
        let mut metadata =
            HashMap::from([("billing_key".to_string(), req.idempotency_key.clone())]);
        if let Some(c) = &req.customer_ref {
            metadata.insert("customer_id".to_string(), c.clone());
        }
        create = create.metadata(metadata);
        let sent = create
            .customize()
            .request_strategy(idempotent(&req.idempotency_key)?)
            .send(&self.client)
            .await;
        answered(sent)
    }
}

/// The outcome a PaymentIntent call came to: the intent's state, a decline, or an error.
fn answered(
    sent: Result<stripe_core::PaymentIntent, StripeError>,
) -> Result<ChargeOutcome, GatewayError> {
    match sent {
        Ok(pi) => intent_outcome(&pi),
        Err(StripeError::Stripe(errors, status)) => outcome::from_error(&parts(&errors, status)),
        Err(e) => Err(call_error(&e)),
    }
}

/// What a PaymentIntent's state means; an authorization carries its charge's risk level when the
/// charge was expanded.
fn intent_outcome(pi: &stripe_core::PaymentIntent) -> Result<ChargeOutcome, GatewayError> {
    let last = pi.last_payment_error.as_deref().map(|e| {
        let message = e.message.clone().unwrap_or_default();
        (parts(e, 402), message)
    });
    let outcome = outcome::from_status(
        pi.id.as_str(),
        pi.status.as_str(),
        last.as_ref().map(|(p, m)| (p, m.as_str())),
    )?;
    Ok(match outcome {
        ChargeOutcome::Authorized {
            gateway_charge_id, ..
        } => ChargeOutcome::Authorized {
            gateway_charge_id,
            risk_level: pi
                .latest_charge
                .as_ref()
                .and_then(|c| c.as_object())
                .and_then(|c| c.outcome.as_ref())
                .and_then(|o| o.risk_level.clone()),
        },
        other => other,
    })
}
