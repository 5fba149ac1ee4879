//! The [`Gateway`] trait and the types it speaks.

use std::fmt;

use ledger::money::Money;
use serde::{Deserialize, Serialize};

/// A payment gateway: Stripe, PayPal, or the sandbox.
///
/// Every call carries an idempotency key. A gateway must treat a second call with the same key and
/// the same parameters as the first one (returning the stored outcome, never moving money twice),
/// and must reject the same key with different parameters as an
/// [`InvalidRequest`](GatewayError::InvalidRequest).
///
/// After a [`GatewayError::Timeout`] or [`GatewayError::Unavailable`] the outcome is unknown: the
/// caller retries with the *same* idempotency key until it gets an answer.
#[async_trait::async_trait]
pub trait Gateway: Send + Sync + 'static {
    /// The gateway's name as recorded in events: `"sandbox"`, `"stripe"`, `"paypal"`.
    fn name(&self) -> &'static str;

    /// Charges `req.amount` to `req.payment_method`.
    ///
    /// A decline is an `Ok(ChargeOutcome::Declined { .. })`, not an error: the gateway answered, and
    /// the answer is final for that idempotency key.
    async fn charge(&self, req: ChargeRequest) -> Result<ChargeOutcome, GatewayError>;

    /// Refunds `req.amount` (partially or fully) of a succeeded charge.
    async fn refund(&self, req: RefundRequest) -> Result<RefundOutcome, GatewayError>;

    /// How long the gateway remembers an idempotency key (Stripe 24 h, PayPal 6 h); `None`:
    /// forever. Past it, calling again with the key could move money a second time, so a charge
    /// whose outcome is still unknown is left for a person to reconcile instead.
    fn idempotency_window(&self) -> Option<std::time::Duration> {
        None
    }

    /// Looks the charge made under `idempotency_key` up at the gateway, without creating
    /// anything: how a charge whose key the gateway may have forgotten is settled. Default:
    /// the gateway cannot be searched.
    async fn find_charge(&self, idempotency_key: &str) -> Result<Lookup, GatewayError> {
        let _ = idempotency_key;
        Ok(Lookup::Unsupported)
    }

    /// Links a payment method to the customer at the gateway where the gateway needs it (Stripe:
    /// a Customer object, made once per customer, with the `pm_…` attached, so it can be charged
    /// off-session later). Default: nothing to link.
    async fn link(&self, req: LinkRequest) -> Result<LinkOutcome, GatewayError> {
        let _ = req;
        Ok(LinkOutcome::default())
    }

    /// Whether this gateway can authorize a charge first and capture it later, reporting its
    /// risk level with the authorization ([`authorize`](Gateway::authorize)). Default: no.
    fn authorizes(&self) -> bool {
        false
    }

    /// Authorizes `req` without capturing it: [`ChargeOutcome::Authorized`] with the gateway's
    /// risk level, or a decline. The same idempotency rules as [`charge`](Gateway::charge).
    async fn authorize(&self, req: ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        let _ = req;
        Err(GatewayError::InvalidRequest(
            "this gateway does not authorize separately".into(),
        ))
    }

    /// Captures an authorization in full: `Succeeded` (money taken) or `Declined`.
    async fn capture(&self, req: CaptureRequest) -> Result<ChargeOutcome, GatewayError> {
        let _ = req;
        Err(GatewayError::InvalidRequest(
            "this gateway does not capture separately".into(),
        ))
    }

    /// Cancels an authorization: the hold is released, no money moves. Canceling one canceled
    /// under the same key again answers the same.
    async fn void(&self, req: CaptureRequest) -> Result<(), GatewayError> {
        let _ = req;
        Err(GatewayError::InvalidRequest(
            "this gateway does not cancel authorizations".into(),
        ))
    }
}

/// Capturing or canceling an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRequest {
    /// Idempotency key of this step (distinct from the authorization's).
    pub idempotency_key: String,
    /// The authorization ([`ChargeOutcome::Authorized`]'s id).
    pub gateway_charge_id: String,
    /// The amount authorized.
    pub amount: Money,
}

/// A request to charge a payment method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRequest {
    /// Idempotency key; derived by the caller from the charge id, so every retry reuses it.
    pub idempotency_key: String,
    /// Amount to charge, in the currency's minor unit; must be positive.
    pub amount: Money,
    /// The gateway's payment-method token (`tok_visa`, `pm_…`). Never a card number.
    pub payment_method: String,
    /// Free-text description shown on the gateway's dashboard.
    pub description: Option<String>,
    /// Our customer id, if any (recorded with the gateway's charge for reconciliation).
    pub customer_ref: Option<String>,
    /// The customer is not present (a renewal): the gateway must not ask for authentication.
    pub off_session: bool,
    /// The gateway's customer the method is attached to (Stripe `cus_…`), if linked.
    pub gateway_customer: Option<String>,
}

/// What looking a charge up found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The gateway has it: its outcome.
    Found(ChargeOutcome),
    /// The gateway has no charge under that key: the request never reached it.
    NotFound,
    /// The gateway cannot be searched by our key.
    Unsupported,
}

/// A payment method to link to a customer at the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRequest {
    /// Our customer id (`cus_…`), recorded with the gateway's customer.
    pub customer_ref: String,
    /// The gateway's customer made for ours before, if any.
    pub gateway_customer: Option<String>,
    /// The gateway's payment-method token.
    pub payment_method: String,
}

/// What linking found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkOutcome {
    /// The gateway's customer the method is attached to (`None`: the gateway needs none).
    pub gateway_customer: Option<String>,
    /// Where the method was issued (ISO 3166-1 alpha-2), when the gateway says.
    pub country: Option<String>,
}

/// The gateway's answer to a charge: it either succeeded or was declined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChargeOutcome {
    /// Money was taken.
    Succeeded {
        /// The gateway's id for the charge (e.g. `ch_…`, `pi_…`).
        gateway_charge_id: String,
    },
    /// The charge was declined; no money was taken.
    Declined {
        /// The gateway's id for the declined attempt.
        gateway_charge_id: String,
        /// Why it was declined.
        failure_code: FailureCode,
        /// The gateway's human-readable message.
        message: String,
    },
    /// The gateway took the payment in and will settle it later (a bank debit processing, a
    /// capture pending review): the outcome arrives by webhook. Asking again creates nothing —
    /// and must not be needed: the payment exists at the gateway under this id.
    Accepted {
        /// The gateway's id for the payment in progress.
        gateway_charge_id: String,
    },
    /// Authorized, not captured ([`Gateway::authorize`]): the money is held until
    /// [`Gateway::capture`] takes it or [`Gateway::void`] releases it.
    Authorized {
        /// The gateway's id for the authorization (Stripe: the PaymentIntent).
        gateway_charge_id: String,
        /// The gateway's risk assessment (Stripe Radar: `normal`, `elevated`, `highest`,
        /// `not_assessed`, `unknown`), when it made one.
        risk_level: Option<String>,
    },
}

impl ChargeOutcome {
    /// The gateway's charge id, whatever the outcome.
    pub fn gateway_charge_id(&self) -> &str {
        match self {
            Self::Succeeded { gateway_charge_id }
            | Self::Accepted { gateway_charge_id }
            | Self::Authorized {
                gateway_charge_id, ..
            }
            | Self::Declined {
                gateway_charge_id, ..
            } => gateway_charge_id,
        }
    }

    /// Whether money was taken.
    pub fn is_succeeded(&self) -> bool {
        matches!(self, Self::Succeeded { .. })
    }
}

/// A request to refund (part of) a succeeded charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    /// Idempotency key; derived by the caller from the refund id, so every retry reuses it.
    pub idempotency_key: String,
    /// The gateway's id of the charge to refund (from [`ChargeOutcome::Succeeded`]).
    pub gateway_charge_id: String,
    /// Amount to refund; positive, in the charge's currency, and never more than what remains
    /// refundable.
    pub amount: Money,
}

/// The gateway's answer to a successful refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundOutcome {
    /// The gateway's id for the refund (e.g. `re_…`).
    pub gateway_refund_id: String,
}

/// A call that got no definitive answer, or a request the gateway refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No answer in time. The outcome is unknown (the gateway may have acted): retry with the same
    /// idempotency key.
    #[error("gateway timed out; outcome unknown, retry with the same idempotency key")]
    Timeout,
    /// The gateway or the network failed (5xx, connection error). Retry with the same idempotency
    /// key.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
    /// No connection could be made: the request never left us, so nothing happened at the
    /// gateway. Retrying is safe, and so is going to another gateway (failover).
    #[error("gateway unreachable: {0}")]
    Unreachable(String),
    /// The gateway refused *our* credentials (a revoked or wrong key): nothing happened, and it
    /// is no fault of the payment — the charge stays pending until the configuration is fixed.
    #[error("gateway refused our credentials: {0}")]
    Unauthorized(String),
    /// The gateway refused the request (4xx): bad parameters, unknown token or charge, idempotency
    /// key reuse, refund beyond the charge. Retrying the same request will not help.
    #[error("invalid gateway request: {0}")]
    InvalidRequest(String),
}

impl GatewayError {
    /// Whether retrying the same request (with the same idempotency key) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout | Self::Unavailable(_) | Self::Unreachable(_) | Self::Unauthorized(_) => {
                true
            }
            Self::InvalidRequest(_) => false,
        }
    }
}

/// Why a charge was declined, as Stripe's snake_case decline codes.
///
/// Serializes and displays as the code (`"card_declined"`, …); [`FailureCode::Other`] carries any
/// other code verbatim. Use [`FailureCode::from_code`] to parse, so that known codes always map to
/// their named variant (`Other("card_declined")` is never produced by parsing).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FailureCode {
    /// `card_declined`: generic decline.
    CardDeclined,
    /// `insufficient_funds`.
    InsufficientFunds,
    /// `fraudulent`: the gateway suspects fraud.
    Fraudulent,
    /// `expired_card`.
    ExpiredCard,
    /// `incorrect_cvc`.
    IncorrectCvc,
    /// `processing_error`: an error at the gateway or issuer while processing the card.
    ProcessingError,
    /// Any other decline code, verbatim.
    Other(String),
}

impl FailureCode {
    /// The snake_case decline code.
    pub fn as_str(&self) -> &str {
        match self {
            Self::CardDeclined => "card_declined",
            Self::InsufficientFunds => "insufficient_funds",
            Self::Fraudulent => "fraudulent",
            Self::ExpiredCard => "expired_card",
            Self::IncorrectCvc => "incorrect_cvc",
            Self::ProcessingError => "processing_error",
            Self::Other(code) => code,
        }
    }

    /// Parses a decline code; unknown codes become [`FailureCode::Other`].
    pub fn from_code(code: &str) -> Self {
        match code {
            "card_declined" => Self::CardDeclined,
            "insufficient_funds" => Self::InsufficientFunds,
            "fraudulent" => Self::Fraudulent,
            "expired_card" => Self::ExpiredCard,
            "incorrect_cvc" => Self::IncorrectCvc,
            "processing_error" => Self::ProcessingError,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for FailureCode {
    fn from(code: String) -> Self {
        match Self::from_code(&code) {
            Self::Other(_) => Self::Other(code),
            known => known,
        }
    }
}

impl From<FailureCode> for String {
    fn from(code: FailureCode) -> Self {
        match code {
            FailureCode::Other(code) => code,
            known => known.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [FailureCode; 6] = [
        FailureCode::CardDeclined,
        FailureCode::InsufficientFunds,
        FailureCode::Fraudulent,
        FailureCode::ExpiredCard,
        FailureCode::IncorrectCvc,
        FailureCode::ProcessingError,
    ];

    #[test]
    fn failure_codes_round_trip_through_str_display_and_serde() {
        for code in KNOWN {
            assert_eq!(FailureCode::from_code(code.as_str()), code);
            assert_eq!(code.to_string(), code.as_str());
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<FailureCode>(&json).unwrap(), code);
        }
        assert_eq!(
            FailureCode::InsufficientFunds.as_str(),
            "insufficient_funds"
        );
    }

    #[test]
    fn unknown_failure_codes_are_kept_verbatim() {
        let code = FailureCode::from_code("do_not_honor");
        assert_eq!(code, FailureCode::Other("do_not_honor".into()));
        assert_eq!(code.to_string(), "do_not_honor");
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"do_not_honor\"");
        assert_eq!(
            serde_json::from_str::<FailureCode>("\"do_not_honor\"").unwrap(),
            code
        );
        // A known code written as `Other` still serializes as the code and parses canonically.
        let json = serde_json::to_string(&FailureCode::Other("fraudulent".into())).unwrap();
        assert_eq!(
            serde_json::from_str::<FailureCode>(&json).unwrap(),
            FailureCode::Fraudulent
        );
    }

    #[test]
    fn charge_outcome_serializes_with_a_status_tag() {
        let declined = ChargeOutcome::Declined {
            gateway_charge_id: "ch_1".into(),
            failure_code: FailureCode::ExpiredCard,
            message: "Your card has expired.".into(),
        };
        let json = serde_json::to_value(&declined).unwrap();
        assert_eq!(json["status"], "declined");
        assert_eq!(json["failure_code"], "expired_card");
        assert_eq!(
            serde_json::from_value::<ChargeOutcome>(json).unwrap(),
            declined
        );
        let ok = ChargeOutcome::Succeeded {
            gateway_charge_id: "ch_2".into(),
        };
        assert_eq!(serde_json::to_value(&ok).unwrap()["status"], "succeeded");
        assert!(ok.is_succeeded() && !declined.is_succeeded());
        assert_eq!(declined.gateway_charge_id(), "ch_1");
    }

    #[test]
    fn only_timeouts_and_unavailability_are_retryable() {
        assert!(GatewayError::Timeout.is_retryable());
        assert!(GatewayError::Unavailable("502".into()).is_retryable());
        assert!(GatewayError::Unreachable("refused".into()).is_retryable());
        assert!(!GatewayError::InvalidRequest("bad".into()).is_retryable());
    }
}
