//! [`SandboxGateway`]: a deterministic, in-memory gateway answering Stripe-like test tokens.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ledger::money::Currency;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use crate::gateway::{
    ChargeOutcome, ChargeRequest, FailureCode, Gateway, GatewayError, RefundOutcome, RefundRequest,
};

/// Longest idempotency key accepted (Stripe's limit).
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// What a test token does when charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenBehavior {
    Succeed,
    Decline(DeclineKind),
    /// The request never reached the gateway: nothing recorded, `Err(Timeout)`.
    TimeoutBeforeCharge,
    /// The charge succeeded and is recorded, but the response was lost: `Err(Timeout)`.
    TimeoutAfterCharge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeclineKind {
    CardDeclined,
    InsufficientFunds,
    Fraudulent,
    ExpiredCard,
    IncorrectCvc,
    ProcessingError,
}

impl DeclineKind {
    fn failure_code(self) -> FailureCode {
        match self {
            Self::CardDeclined => FailureCode::CardDeclined,
            Self::InsufficientFunds => FailureCode::InsufficientFunds,
            Self::Fraudulent => FailureCode::Fraudulent,
            Self::ExpiredCard => FailureCode::ExpiredCard,
            Self::IncorrectCvc => FailureCode::IncorrectCvc,
            Self::ProcessingError => FailureCode::ProcessingError,
        }
    }

    /// Stripe's messages for these declines.
    fn message(self) -> &'static str {
        match self {
            Self::CardDeclined => "Your card was declined.",
            Self::InsufficientFunds => "Your card has insufficient funds.",
            Self::Fraudulent => "Your card was declined.",
            Self::ExpiredCard => "Your card has expired.",
            Self::IncorrectCvc => "Your card's security code is incorrect.",
            Self::ProcessingError => "An error occurred while processing your card. Try again.",
        }
    }
}

fn token_behavior(token: &str) -> Option<TokenBehavior> {
    use DeclineKind as D;
    use TokenBehavior as B;
    Some(match token {
        "tok_visa" | "tok_mastercard" | "tok_amex" | "pm_card_visa" => B::Succeed,
        "tok_chargeDeclined" => B::Decline(D::CardDeclined),
        "tok_chargeDeclinedInsufficientFunds" => B::Decline(D::InsufficientFunds),
        "tok_chargeDeclinedFraudulent" => B::Decline(D::Fraudulent),
        "tok_chargeDeclinedExpiredCard" => B::Decline(D::ExpiredCard),
        "tok_chargeDeclinedIncorrectCvc" => B::Decline(D::IncorrectCvc),
        "tok_chargeDeclinedProcessingError" => B::Decline(D::ProcessingError),
        "tok_timeout" => B::TimeoutBeforeCharge,
        "tok_timeoutAfterCharge" => B::TimeoutAfterCharge,
        _ => return None,
    })
}

/// The parameters an idempotency key is bound to for a charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChargeFingerprint {
    amount_minor: i64,
    #[serde(deserialize_with = "currency_code")]
    currency: CurrencyCode,
    payment_method: String,
}

/// The parameters an idempotency key is bound to for a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RefundFingerprint {
    gateway_charge_id: String,
    amount_minor: i64,
    #[serde(deserialize_with = "currency_code")]
    currency: CurrencyCode,
}

/// A charge the sandbox processed (succeeded or declined).
#[derive(Debug, Serialize, Deserialize)]
struct ChargeRecord {
    amount_minor: i64,
    #[serde(deserialize_with = "currency_code")]
    currency: CurrencyCode,
    succeeded: bool,
    refunded_minor: i64,
}

/// [`Currency::code`]. An alias, so that serde's derive does not take the field for a string
/// borrowed from the input (it would then require `'de: 'static`).
type CurrencyCode = &'static str;

/// A currency code read back from a state file.
fn currency_code<'de, D: Deserializer<'de>>(d: D) -> Result<CurrencyCode, D::Error> {
    let code = String::deserialize(d)?;
    Currency::parse(&code)
        .map(|c| c.code())
        .map_err(serde::de::Error::custom)
}

/// Everything the sandbox remembers; the content of its state file, when it has one.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Charge calls received, whatever their outcome.
    calls: usize,
    /// Distinct successful charges made.
    charges_made: usize,
    /// Distinct refunds made.
    refunds_made: usize,
    /// Charges by gateway charge id. B-trees, not hash tables: a hash table grows by rehashing
    /// everything at once, under this one lock — at ~230,000 and ~460,000 charges every charge
    /// of the process waited 0.3 and 0.7 s (docs/BENCHMARKS.md); a B-tree grows a node at a time.
    charges: BTreeMap<String, ChargeRecord>,
    /// Stored charge outcomes by idempotency key.
    charge_keys: BTreeMap<String, (ChargeFingerprint, ChargeOutcome)>,
    /// Stored refund outcomes by idempotency key.
    refund_keys: BTreeMap<String, (RefundFingerprint, RefundOutcome)>,
}

/// A deterministic, in-memory gateway with Stripe-like test tokens, for tests and the embedded
/// default deployment.
///
/// | token | outcome |
/// |---|---|
/// | `tok_visa`, `tok_mastercard`, `tok_amex`, `pm_card_visa` | succeeds |
/// | `tok_chargeDeclined` | declined, `card_declined` |
/// | `tok_chargeDeclinedInsufficientFunds` | declined, `insufficient_funds` |
/// | `tok_chargeDeclinedFraudulent` | declined, `fraudulent` |
/// | `tok_chargeDeclinedExpiredCard` | declined, `expired_card` |
/// | `tok_chargeDeclinedIncorrectCvc` | declined, `incorrect_cvc` |
/// | `tok_chargeDeclinedProcessingError` | declined, `processing_error` |
/// | `tok_timeout` | `Err(Timeout)`; the gateway never received it, nothing is recorded |
/// | `tok_timeoutAfterCharge` | the charge succeeds and is recorded, but the call returns `Err(Timeout)` (the response was lost); a retry with the same key returns the recorded success |
/// | anything else | `Err(InvalidRequest("No such token: …"))` |
///
/// Idempotency follows Stripe: the same key with the same parameters (amount, currency, token for
/// charges; charge id, amount, currency for refunds) returns the stored outcome, declines included,
/// and never moves money twice; the same key with different parameters, or a key first used for
/// the other operation, is an `InvalidRequest`. Requests rejected by validation (unknown token,
/// non-positive amount, …) store nothing, so the key stays free.
///
/// Ids are derived from the idempotency key: `ch_sb_` / `re_sb_` followed by the first 24 hex
/// characters of the key's SHA-256.
///
/// Refunds: only of a succeeded charge, in its currency, positive, and never more in total than
/// the charged amount.
///
/// The book lives in memory and dies with the process — unless the sandbox was made by
/// [`SandboxGateway::with_state_file`].
#[derive(Debug, Default)]
pub struct SandboxGateway {
    state: Mutex<State>,
    latency: Duration,
    /// Where the book is kept across restarts, if anywhere.
    state_file: Option<PathBuf>,
}

impl SandboxGateway {
    /// A sandbox gateway with no simulated latency.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sandbox whose book survives a restart of the process, as a real gateway's does (it
    /// stands in for the gateway's own memory, which outlives ours): the state is loaded from
    /// the JSON file at `path` (an empty book when the file does not exist) and written back after
    /// every call (every call counts in [`calls`](Self::calls)), to a temporary file next to it
    /// that is synced and renamed over it, so a crash leaves either the old or the new book.
    ///
    /// For tests (`BILLING_SANDBOX_STATE`): one process at a time per file, and a call pays for an
    /// `fsync`. If the file cannot be written the call answers `Unavailable` (a retryable error,
    /// outcome unknown); what was recorded in memory stands and is written with the next call.
    ///
    /// # Errors
    /// The file exists but cannot be read or is not a sandbox state.
    pub fn with_state_file(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        let path = path.into();
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a sandbox state file: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            state: Mutex::new(state),
            latency: Duration::ZERO,
            state_file: Some(path),
        })
    }

    /// Simulates network latency: every call sleeps this long (on the tokio timer) before it is
    /// processed.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Number of distinct successful charges actually made (money taken), retries excluded.
    pub fn charges_made(&self) -> usize {
        self.lock().charges_made
    }

    /// Number of charge calls received, whatever their outcome (retries and errors included).
    pub fn calls(&self) -> usize {
        self.lock().calls
    }

    /// Number of distinct refunds actually made, retries excluded.
    pub fn refunds_made(&self) -> usize {
        self.lock().refunds_made
    }

    /// Total refunded so far, in minor units, of a charge; `None` for an unknown charge id.
    pub fn refunded_minor(&self, gateway_charge_id: &str) -> Option<i64> {
        self.lock()
            .charges
            .get(gateway_charge_id)
            .map(|charge| charge.refunded_minor)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is left consistent at every point a panic could occur, so a poisoned lock is
        // still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the book to the state file, if there is one; called with the lock held, so writes
    /// happen one at a time and in order.
    fn save(&self, state: &State) -> Result<(), GatewayError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        write_atomically(path, state).map_err(|e| {
            GatewayError::Unavailable(format!(
                "sandbox state file {} not written: {e}",
                path.display()
            ))
        })
    }

    async fn simulate_latency(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

/// Writes `state` as JSON to `<path>.tmp`, syncs it, renames it over `path` and syncs the
/// directory.
fn write_atomically(path: &Path, state: &State) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The rename is durable once the directory is synced (not possible on every platform).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `prefix` followed by the first 24 hex characters of SHA-256(`key`).
fn derive_id(prefix: &str, key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    for byte in digest.iter().take(12) {
        // Writing to a String cannot fail.
        let _ = write!(id, "{byte:02x}");
    }
    id
}

fn validate_key(key: &str) -> Result<(), GatewayError> {
    if key.is_empty() {
        return Err(GatewayError::InvalidRequest(
            "An idempotency key is required.".into(),
        ));
    }
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(GatewayError::InvalidRequest(format!(
            "Idempotency key is too long: {} characters, at most {MAX_IDEMPOTENCY_KEY_LEN} allowed.",
            key.chars().count()
        )));
    }
    Ok(())
}

fn key_reuse_error(key: &str) -> GatewayError {
    GatewayError::InvalidRequest(format!(
        "Keys for idempotent requests can only be used with the same parameters they were first \
         used with. Try using a key other than '{key}' if you meant to execute a different request \
         (idempotency key reuse)."
    ))
}

fn key_endpoint_error(key: &str) -> GatewayError {
    GatewayError::InvalidRequest(format!(
        "Keys for idempotent requests can only be used for the same endpoint they were first used \
         for; '{key}' was used for another endpoint (idempotency key reuse)."
    ))
}

#[async_trait::async_trait]
impl Gateway for SandboxGateway {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn charge(&self, req: ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        {
            let mut state = self.lock();
            state.calls += 1;
            self.save(&state)?;
        }
        self.simulate_latency().await;

        validate_key(&req.idempotency_key)?;
        let fingerprint = ChargeFingerprint {
            amount_minor: req.amount.amount_minor(),
            currency: req.amount.currency().code(),
            payment_method: req.payment_method.clone(),
        };

        let mut state = self.lock();

        if let Some((stored, outcome)) = state.charge_keys.get(&req.idempotency_key) {
            return if *stored == fingerprint {
                Ok(outcome.clone())
            } else {
                Err(key_reuse_error(&req.idempotency_key))
            };
        }
        if state.refund_keys.contains_key(&req.idempotency_key) {
            return Err(key_endpoint_error(&req.idempotency_key));
        }

        // Validation failures store nothing under the key.
        if fingerprint.amount_minor <= 0 {
            return Err(GatewayError::InvalidRequest(format!(
                "Invalid amount: {} (minor units); the amount must be positive.",
                fingerprint.amount_minor
            )));
        }
        let Some(behavior) = token_behavior(&req.payment_method) else {
            return Err(GatewayError::InvalidRequest(format!(
                "No such token: '{}'",
                req.payment_method
            )));
        };
        if behavior == TokenBehavior::TimeoutBeforeCharge {
            // The request never reached the gateway.
            return Err(GatewayError::Timeout);
        }

        let gateway_charge_id = derive_id("ch_sb_", &req.idempotency_key);
        let (outcome, succeeded) = match behavior {
            TokenBehavior::Decline(kind) => (
                ChargeOutcome::Declined {
                    gateway_charge_id: gateway_charge_id.clone(),
                    failure_code: kind.failure_code(),
                    message: kind.message().to_owned(),
                },
                false,
            ),
            TokenBehavior::Succeed
            | TokenBehavior::TimeoutAfterCharge
            | TokenBehavior::TimeoutBeforeCharge => (
                ChargeOutcome::Succeeded {
                    gateway_charge_id: gateway_charge_id.clone(),
                },
                true,
            ),
        };

        if succeeded {
            state.charges_made += 1;
        }
        state.charges.insert(
            gateway_charge_id,
            ChargeRecord {
                amount_minor: fingerprint.amount_minor,
                currency: fingerprint.currency,
                succeeded,
                refunded_minor: 0,
            },
        );
        state
            .charge_keys
            .insert(req.idempotency_key, (fingerprint, outcome.clone()));
        self.save(&state)?;

        if behavior == TokenBehavior::TimeoutAfterCharge {
            // Charged and recorded, but the response is lost on the way back.
            return Err(GatewayError::Timeout);
        }
        Ok(outcome)
    }

    async fn refund(&self, req: RefundRequest) -> Result<RefundOutcome, GatewayError> {
        self.simulate_latency().await;

        validate_key(&req.idempotency_key)?;
        let fingerprint = RefundFingerprint {
            gateway_charge_id: req.gateway_charge_id.clone(),
            amount_minor: req.amount.amount_minor(),
            currency: req.amount.currency().code(),
        };

        let mut state = self.lock();

        if let Some((stored, outcome)) = state.refund_keys.get(&req.idempotency_key) {
            return if *stored == fingerprint {
                Ok(outcome.clone())
            } else {
                Err(key_reuse_error(&req.idempotency_key))
            };
        }
        if state.charge_keys.contains_key(&req.idempotency_key) {
            return Err(key_endpoint_error(&req.idempotency_key));
        }

        if fingerprint.amount_minor <= 0 {
            return Err(GatewayError::InvalidRequest(format!(
                "Invalid amount: {} (minor units); the refund amount must be positive.",
                fingerprint.amount_minor
            )));
        }
        let Some(charge) = state.charges.get_mut(&req.gateway_charge_id) else {
            return Err(GatewayError::InvalidRequest(format!(
                "No such charge: '{}'",
                req.gateway_charge_id
            )));
        };
        if !charge.succeeded {
            return Err(GatewayError::InvalidRequest(format!(
                "Charge '{}' was declined and cannot be refunded.",
                req.gateway_charge_id
            )));
        }
        if charge.currency != fingerprint.currency {
            return Err(GatewayError::InvalidRequest(format!(
                "Refund currency '{}' does not match the charge currency '{}'.",
                fingerprint.currency, charge.currency
            )));
        }
        // 0 <= refunded_minor <= amount_minor, so this cannot overflow.
        let remaining = charge.amount_minor - charge.refunded_minor;
        if fingerprint.amount_minor > remaining {
            return Err(GatewayError::InvalidRequest(format!(
                "Refund amount exceeds the charge's remaining refundable amount: requested {}, \
                 remaining {remaining} (of {} charged), minor units.",
                fingerprint.amount_minor, charge.amount_minor
            )));
        }
        charge.refunded_minor += fingerprint.amount_minor;

        let outcome = RefundOutcome {
            gateway_refund_id: derive_id("re_sb_", &req.idempotency_key),
        };
        state.refunds_made += 1;
        state
            .refund_keys
            .insert(req.idempotency_key, (fingerprint, outcome.clone()));
        self.save(&state)?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ledger::money::{Currency, Money};

    use super::*;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).expect("known currency")
    }

    fn money(amount_minor: i64, code: &str) -> Money {
        Money::new(amount_minor, currency(code))
    }

    fn usd(amount_minor: i64) -> Money {
        money(amount_minor, "usd")
    }

    fn charge_req(key: &str, token: &str, amount: Money) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: key.to_owned(),
            amount,
            payment_method: token.to_owned(),
            description: Some("test charge".to_owned()),
            customer_ref: None,
            off_session: false,
            gateway_customer: None,
        }
    }

    fn refund_req(key: &str, charge_id: &str, amount: Money) -> RefundRequest {
        RefundRequest {
            idempotency_key: key.to_owned(),
            gateway_charge_id: charge_id.to_owned(),
            amount,
        }
    }

    fn assert_invalid(result: Result<impl std::fmt::Debug, GatewayError>, needle: &str) {
        match result {
            Err(GatewayError::InvalidRequest(msg)) => {
                assert!(msg.contains(needle), "{msg:?} should mention {needle:?}")
            }
            other => panic!("expected InvalidRequest mentioning {needle:?}, got {other:?}"),
        }
    }

    /// Charges `amount` on `tok_visa` and returns the charge id.
    async fn visa_charge(gw: &SandboxGateway, key: &str, amount: Money) -> String {
        match gw.charge(charge_req(key, "tok_visa", amount)).await {
            Ok(ChargeOutcome::Succeeded { gateway_charge_id }) => gateway_charge_id,
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[test]
    fn name_is_sandbox() {
        assert_eq!(SandboxGateway::new().name(), "sandbox");
    }

    #[tokio::test]
    async fn succeeding_tokens_charge() {
        let gw = SandboxGateway::new();
        for (i, token) in ["tok_visa", "tok_mastercard", "tok_amex", "pm_card_visa"]
            .into_iter()
            .enumerate()
        {
            let key = format!("key-{token}");
            let outcome = gw.charge(charge_req(&key, token, usd(1000))).await;
            assert_eq!(
                outcome,
                Ok(ChargeOutcome::Succeeded {
                    gateway_charge_id: derive_id("ch_sb_", &key)
                }),
                "{token}"
            );
            assert_eq!(gw.charges_made(), i + 1);
        }
        assert_eq!(gw.calls(), 4);
    }

    #[tokio::test]
    async fn declining_tokens_decline_with_their_code() {
        let gw = SandboxGateway::new();
        let cases = [
            ("tok_chargeDeclined", FailureCode::CardDeclined),
            (
                "tok_chargeDeclinedInsufficientFunds",
                FailureCode::InsufficientFunds,
            ),
            ("tok_chargeDeclinedFraudulent", FailureCode::Fraudulent),
            ("tok_chargeDeclinedExpiredCard", FailureCode::ExpiredCard),
            ("tok_chargeDeclinedIncorrectCvc", FailureCode::IncorrectCvc),
            (
                "tok_chargeDeclinedProcessingError",
                FailureCode::ProcessingError,
            ),
        ];
        for (token, expected) in cases {
            let key = format!("key-{token}");
            match gw.charge(charge_req(&key, token, usd(500))).await {
                Ok(ChargeOutcome::Declined {
                    gateway_charge_id,
                    failure_code,
                    message,
                }) => {
                    assert_eq!(gateway_charge_id, derive_id("ch_sb_", &key));
                    assert_eq!(failure_code, expected, "{token}");
                    assert!(!message.is_empty());
                }
                other => panic!("{token}: expected decline, got {other:?}"),
            }
        }
        assert_eq!(gw.charges_made(), 0);
        assert_eq!(gw.calls(), 6);
    }

    #[tokio::test]
    async fn declines_are_stored_under_their_key() {
        let gw = SandboxGateway::new();
        let req = charge_req("k", "tok_chargeDeclinedInsufficientFunds", usd(500));
        let first = gw.charge(req.clone()).await.unwrap();
        let second = gw.charge(req).await.unwrap();
        assert_eq!(first, second);
        assert!(!first.is_succeeded());
        // A different token under the same key is key reuse, not a new attempt.
        assert_invalid(
            gw.charge(charge_req("k", "tok_visa", usd(500))).await,
            "idempotency key reuse",
        );
        assert_eq!(gw.charges_made(), 0);
    }

    #[tokio::test]
    async fn unknown_token_and_bad_amounts_are_invalid_and_store_nothing() {
        let gw = SandboxGateway::new();
        assert_invalid(
            gw.charge(charge_req("k", "tok_nope", usd(100))).await,
            "No such token: 'tok_nope'",
        );
        assert_invalid(
            gw.charge(charge_req("k", "4242424242424242", usd(100)))
                .await,
            "No such token",
        );
        assert_invalid(
            gw.charge(charge_req("k", "tok_visa", usd(0))).await,
            "amount",
        );
        assert_invalid(
            gw.charge(charge_req("k", "tok_visa", usd(-5))).await,
            "amount",
        );
        assert_invalid(
            gw.charge(charge_req("k", "tok_visa", usd(i64::MIN))).await,
            "amount",
        );
        assert_invalid(
            gw.charge(charge_req("", "tok_visa", usd(100))).await,
            "idempotency key",
        );
        let long_key = "x".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1);
        assert_invalid(
            gw.charge(charge_req(&long_key, "tok_visa", usd(100))).await,
            "too long",
        );
        assert_eq!(gw.charges_made(), 0);
        assert_eq!(gw.calls(), 7);
        // The key was never bound: a valid request with it now goes through.
        visa_charge(&gw, "k", usd(100)).await;
        assert_eq!(gw.charges_made(), 1);
    }

    #[tokio::test]
    async fn same_key_twice_charges_once() {
        let gw = SandboxGateway::new();
        let req = charge_req("order-1", "tok_visa", usd(2500));
        let first = gw.charge(req.clone()).await.unwrap();
        let second = gw.charge(req).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(gw.charges_made(), 1);
        assert_eq!(gw.calls(), 2);
    }

    #[tokio::test]
    async fn same_key_different_parameters_is_rejected_without_charging() {
        let gw = SandboxGateway::new();
        visa_charge(&gw, "order-1", usd(2500)).await;
        assert_invalid(
            gw.charge(charge_req("order-1", "tok_visa", usd(2600)))
                .await,
            "idempotency key reuse",
        );
        assert_invalid(
            gw.charge(charge_req("order-1", "tok_visa", money(2500, "eur")))
                .await,
            "idempotency key reuse",
        );
        assert_invalid(
            gw.charge(charge_req("order-1", "tok_mastercard", usd(2500)))
                .await,
            "idempotency key reuse",
        );
        assert_eq!(gw.charges_made(), 1);
        // Description and customer are not part of the fingerprint.
        let mut req = charge_req("order-1", "tok_visa", usd(2500));
        req.description = None;
        req.customer_ref = Some("cus_1".into());
        assert!(gw.charge(req).await.unwrap().is_succeeded());
        assert_eq!(gw.charges_made(), 1);
    }

    #[tokio::test]
    async fn different_keys_charge_separately_with_distinct_deterministic_ids() {
        let gw = SandboxGateway::new();
        let a = visa_charge(&gw, "a", usd(100)).await;
        let b = visa_charge(&gw, "b", usd(100)).await;
        assert_ne!(a, b);
        assert_eq!(gw.charges_made(), 2);
        assert!(a.starts_with("ch_sb_") && a.len() == "ch_sb_".len() + 24);
        assert!(a["ch_sb_".len()..].chars().all(|c| c.is_ascii_hexdigit()));
        // Another gateway instance derives the same id from the same key.
        assert_eq!(visa_charge(&SandboxGateway::new(), "a", usd(100)).await, a);
    }

    #[tokio::test]
    async fn timeout_before_charge_records_nothing() {
        let gw = SandboxGateway::new();
        let req = charge_req("t1", "tok_timeout", usd(100));
        assert_eq!(gw.charge(req.clone()).await, Err(GatewayError::Timeout));
        assert_eq!(gw.charge(req).await, Err(GatewayError::Timeout));
        assert_eq!(gw.charges_made(), 0);
        assert_eq!(gw.calls(), 2);
        // Nothing was bound to the key.
        visa_charge(&gw, "t1", usd(100)).await;
        assert_eq!(gw.charges_made(), 1);
    }

    #[tokio::test]
    async fn timeout_after_charge_then_retry_returns_the_recorded_success() {
        let gw = SandboxGateway::new();
        let req = charge_req("t2", "tok_timeoutAfterCharge", usd(4200));
        let err = gw.charge(req.clone()).await.unwrap_err();
        assert_eq!(err, GatewayError::Timeout);
        assert!(err.is_retryable());
        assert_eq!(gw.charges_made(), 1, "the charge happened");

        let retried = gw.charge(req.clone()).await;
        assert_eq!(
            retried,
            Ok(ChargeOutcome::Succeeded {
                gateway_charge_id: derive_id("ch_sb_", "t2")
            })
        );
        assert_eq!(gw.charge(req).await, retried);
        assert_eq!(gw.charges_made(), 1);
        assert_eq!(gw.calls(), 3);

        // The recorded charge is real: it can be refunded.
        let charge_id = retried.unwrap().gateway_charge_id().to_owned();
        assert!(
            gw.refund(refund_req("r", &charge_id, usd(4200)))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn partial_and_repeated_refunds_up_to_the_charge() {
        let gw = SandboxGateway::new();
        let ch = visa_charge(&gw, "c", usd(1000)).await;

        let r1 = gw.refund(refund_req("r1", &ch, usd(300))).await.unwrap();
        let r2 = gw.refund(refund_req("r2", &ch, usd(300))).await.unwrap();
        assert_ne!(r1, r2);
        assert_eq!(r1.gateway_refund_id, derive_id("re_sb_", "r1"));
        assert_eq!(gw.refunded_minor(&ch), Some(600));

        assert_invalid(
            gw.refund(refund_req("r3", &ch, usd(401))).await,
            "amount exceeds",
        );
        assert_eq!(gw.refunded_minor(&ch), Some(600));

        gw.refund(refund_req("r3", &ch, usd(400))).await.unwrap();
        assert_eq!(gw.refunded_minor(&ch), Some(1000));
        assert_invalid(
            gw.refund(refund_req("r4", &ch, usd(1))).await,
            "amount exceeds",
        );
        assert_eq!(gw.refunds_made(), 3);
    }

    #[tokio::test]
    async fn refund_beyond_the_charge_at_once_is_rejected() {
        let gw = SandboxGateway::new();
        let ch = visa_charge(&gw, "c", usd(1000)).await;
        assert_invalid(
            gw.refund(refund_req("r", &ch, usd(1001))).await,
            "amount exceeds",
        );
        assert_invalid(
            gw.refund(refund_req("r", &ch, usd(i64::MAX))).await,
            "amount exceeds",
        );
        assert_eq!(gw.refunded_minor(&ch), Some(0));
        assert_eq!(gw.refunds_made(), 0);
    }

    #[tokio::test]
    async fn refunds_are_idempotent_by_key() {
        let gw = SandboxGateway::new();
        let ch = visa_charge(&gw, "c", usd(1000)).await;
        let req = refund_req("r1", &ch, usd(700));
        let first = gw.refund(req.clone()).await.unwrap();
        // A retry returns the stored refund even though 700 more would now exceed the charge.
        let second = gw.refund(req).await.unwrap();
        assert_eq!(first, second);
        assert_eq!(gw.refunded_minor(&ch), Some(700));
        assert_eq!(gw.refunds_made(), 1);

        assert_invalid(
            gw.refund(refund_req("r1", &ch, usd(100))).await,
            "idempotency key reuse",
        );
        assert_eq!(gw.refunded_minor(&ch), Some(700));
    }

    #[tokio::test]
    async fn refunds_of_unknown_or_declined_charges_are_rejected() {
        let gw = SandboxGateway::new();
        assert_invalid(
            gw.refund(refund_req("r1", "ch_sb_missing", usd(100))).await,
            "No such charge",
        );
        let declined = gw
            .charge(charge_req("d", "tok_chargeDeclined", usd(100)))
            .await
            .unwrap();
        assert_invalid(
            gw.refund(refund_req("r2", declined.gateway_charge_id(), usd(100)))
                .await,
            "declined",
        );
        assert_eq!(gw.refunds_made(), 0);
    }

    #[tokio::test]
    async fn refunds_must_be_positive_and_in_the_charge_currency() {
        let gw = SandboxGateway::new();
        let ch = visa_charge(&gw, "c", usd(1000)).await;
        assert_invalid(gw.refund(refund_req("r", &ch, usd(0))).await, "positive");
        assert_invalid(gw.refund(refund_req("r", &ch, usd(-1))).await, "positive");
        assert_invalid(
            gw.refund(refund_req("r", &ch, money(100, "eur"))).await,
            "currency",
        );
        assert_eq!(gw.refunded_minor(&ch), Some(0));
    }

    #[tokio::test]
    async fn a_key_is_bound_to_one_endpoint() {
        let gw = SandboxGateway::new();
        let ch = visa_charge(&gw, "shared", usd(1000)).await;
        assert_invalid(
            gw.refund(refund_req("shared", &ch, usd(100))).await,
            "endpoint",
        );
        gw.refund(refund_req("refund-key", &ch, usd(100)))
            .await
            .unwrap();
        assert_invalid(
            gw.charge(charge_req("refund-key", "tok_visa", usd(100)))
                .await,
            "endpoint",
        );
        assert_eq!(gw.charges_made(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_charges_with_one_key_charge_once() {
        let gw = Arc::new(SandboxGateway::new().with_latency(Duration::from_millis(5)));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let gw = Arc::clone(&gw);
                tokio::spawn(async move {
                    gw.charge(charge_req("same-key", "tok_visa", usd(999)))
                        .await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("task").expect("charge"));
        }
        assert!(outcomes.iter().all(|o| *o == outcomes[0]));
        assert!(outcomes[0].is_succeeded());
        assert_eq!(gw.charges_made(), 1);
        assert_eq!(gw.calls(), 50);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_concurrent_refunds_never_exceed_the_charge() {
        let gw = Arc::new(SandboxGateway::new());
        let ch = visa_charge(&gw, "c", usd(1000)).await;
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let gw = Arc::clone(&gw);
                let ch = ch.clone();
                tokio::spawn(
                    async move { gw.refund(refund_req(&format!("r{i}"), &ch, usd(30))).await },
                )
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            if task.await.expect("task").is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 33);
        assert_eq!(gw.refunded_minor(&ch), Some(990));
    }

    #[tokio::test]
    async fn a_state_file_keeps_the_book_across_restarts() {
        let dir = std::env::temp_dir().join(format!(
            "kb-sandbox-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sandbox.json");

        let gw = SandboxGateway::with_state_file(&file).unwrap();
        let ch = visa_charge(&gw, "order-1", usd(1000)).await;
        gw.refund(refund_req("r1", &ch, usd(300))).await.unwrap();
        drop(gw);

        // A new process: the same key answers the recorded charge and charges nothing more.
        let gw = SandboxGateway::with_state_file(&file).unwrap();
        assert_eq!(
            (gw.charges_made(), gw.refunds_made(), gw.calls()),
            (1, 1, 1)
        );
        assert_eq!(visa_charge(&gw, "order-1", usd(1000)).await, ch);
        assert_eq!(gw.charges_made(), 1);
        assert_eq!(gw.refunded_minor(&ch), Some(300));
        assert_invalid(
            gw.refund(refund_req("r2", &ch, usd(701))).await,
            "amount exceeds",
        );
        assert_eq!(gw.calls(), 2, "the retry counts as a call, and is kept");
        assert_eq!(SandboxGateway::with_state_file(&file).unwrap().calls(), 2);
        assert!(!dir.join("sandbox.json.tmp").exists());

        std::fs::write(&file, "not json").unwrap();
        assert!(SandboxGateway::with_state_file(&file).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
