//! A charge: requested first, then the gateway's outcome.
//!
//! `ChargeRequested` is recorded before the gateway is called, with the gateway idempotency key
//! derived from the charge id; the outcome (`ChargeSucceeded` / `ChargeFailed`) follows. A process
//! that dies in between leaves a requested charge that can be completed later with the same key:
//! a card is never charged twice, and never charged without a record.

mod asking;
pub mod authorization;
pub mod dispute;
pub mod failover;
pub mod fraud;
mod gateway_report;
pub mod recovery;
pub mod refund;
mod refund_service;
pub mod review;
mod service;

use chrono::{DateTime, Utc};
use ledger::ids::{ChargeId, CustomerId};
use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use crate::stored::{DomainEvent, from_json, to_json};
use dispute::DisputeEvent;
use refund::RefundEvent;
use review::ReviewEvent;

pub use gateway_report::{GatewayReport, ListedRefund, decide_report};
pub use refund_service::{RefundInput, RefundResult, RenderRefund};
pub use service::{
    AfterGatewayHook, ChargeInput, ChargeResult, ChargeService, IdempotencyDraft, Render, Rendered,
    unrendered,
};

/// Largest amount of one charge, in minor units (Stripe's limit: 999,999.99 of a 2-decimal
/// currency).
pub const CHARGE_MAX_MINOR: i64 = 99_999_999;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequested {
    pub charge_id: ChargeId,
    pub amount: i64,
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<CustomerId>,
    pub payment_method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub gateway: String,
    /// The idempotency key every gateway call for this charge uses.
    pub gateway_key: String,
    /// Charged without the customer present (a renewal, an invoice payment by the scheduler):
    /// the gateway must not ask for authentication it cannot get.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub off_session: bool,
    /// The gateway's customer the method is attached to (Stripe `cus_…`), when linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_customer: Option<String>,
    /// Authorized first and captured after the gateway's risk level is screened (decided when
    /// requested, so a retry asks the gateway exactly as the first call did).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capture_later: bool,
    /// Fingerprint of the API request that asked for the charge under an `Idempotency-Key`: a
    /// later request with the same key but another body is refused, even while this charge is
    /// still pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeSucceeded {
    pub charge_id: ChargeId,
    pub gateway_charge_id: String,
}

/// The gateway took the payment in and settles it later (its webhook says how).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeProcessing {
    pub charge_id: ChargeId,
    pub gateway_charge_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeFailed {
    pub charge_id: ChargeId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_charge_id: Option<String>,
    pub failure_code: String,
    pub failure_message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeEvent {
    Requested(ChargeRequested),
    Succeeded(ChargeSucceeded),
    Processing(ChargeProcessing),
    Failed(ChargeFailed),
    Refund(refund::RefundEvent),
    Dispute(dispute::DisputeEvent),
    Review(review::ReviewEvent),
    FailedOver(failover::ChargeFailedOver),
    Authorized(authorization::ChargeAuthorized),
}

impl DomainEvent for ChargeEvent {
    fn event_type(&self) -> &'static str {
        match self {
            ChargeEvent::Requested(_) => "ChargeRequested",
            ChargeEvent::Succeeded(_) => "ChargeSucceeded",
            ChargeEvent::Processing(_) => "ChargeProcessing",
            ChargeEvent::Failed(_) => "ChargeFailed",
            ChargeEvent::Refund(RefundEvent::Requested(_)) => "RefundRequested",
            ChargeEvent::Refund(RefundEvent::Succeeded(_)) => "RefundSucceeded",
            ChargeEvent::Refund(RefundEvent::Failed(_)) => "RefundFailed",
            ChargeEvent::Dispute(DisputeEvent::Opened(_)) => "ChargeDisputed",
            ChargeEvent::Dispute(DisputeEvent::FundsWithdrawn(_)) => "DisputeFundsWithdrawn",
            ChargeEvent::Dispute(DisputeEvent::Closed(_)) => "DisputeClosed",
            ChargeEvent::Review(ReviewEvent::Assessed(_)) => "FraudAssessed",
            ChargeEvent::Review(ReviewEvent::Closed(_)) => "ReviewClosed",
            ChargeEvent::FailedOver(_) => "ChargeFailedOver",
            ChargeEvent::Authorized(_) => "ChargeAuthorized",
        }
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            ChargeEvent::Requested(e) => to_json(e),
            ChargeEvent::Succeeded(e) => to_json(e),
            ChargeEvent::Processing(e) => to_json(e),
            ChargeEvent::Failed(e) => to_json(e),
            ChargeEvent::Refund(RefundEvent::Requested(e)) => to_json(e),
            ChargeEvent::Refund(RefundEvent::Succeeded(e)) => to_json(e),
            ChargeEvent::Refund(RefundEvent::Failed(e)) => to_json(e),
            ChargeEvent::Dispute(DisputeEvent::Opened(e)) => to_json(e),
            ChargeEvent::Dispute(DisputeEvent::FundsWithdrawn(e)) => to_json(e),
            ChargeEvent::Dispute(DisputeEvent::Closed(e)) => to_json(e),
            ChargeEvent::Review(ReviewEvent::Assessed(e)) => to_json(e),
            ChargeEvent::Review(ReviewEvent::Closed(e)) => to_json(e),
            ChargeEvent::FailedOver(e) => to_json(e),
            ChargeEvent::Authorized(e) => to_json(e),
        }
    }

    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        match event_type {
            "ChargeRequested" => from_json(payload).map(ChargeEvent::Requested),
            "ChargeSucceeded" => from_json(payload).map(ChargeEvent::Succeeded),
            "ChargeProcessing" => from_json(payload).map(ChargeEvent::Processing),
            "ChargeFailed" => from_json(payload).map(ChargeEvent::Failed),
            "RefundRequested" => {
                from_json(payload).map(|e| ChargeEvent::Refund(RefundEvent::Requested(e)))
            }
            "RefundSucceeded" => {
                from_json(payload).map(|e| ChargeEvent::Refund(RefundEvent::Succeeded(e)))
            }
            "RefundFailed" => {
                from_json(payload).map(|e| ChargeEvent::Refund(RefundEvent::Failed(e)))
            }
            "ChargeDisputed" => {
                from_json(payload).map(|e| ChargeEvent::Dispute(DisputeEvent::Opened(e)))
            }
            "DisputeFundsWithdrawn" => {
                from_json(payload).map(|e| ChargeEvent::Dispute(DisputeEvent::FundsWithdrawn(e)))
            }
            "DisputeClosed" => {
                from_json(payload).map(|e| ChargeEvent::Dispute(DisputeEvent::Closed(e)))
            }
            "FraudAssessed" => {
                from_json(payload).map(|e| ChargeEvent::Review(ReviewEvent::Assessed(e)))
            }
            "ReviewClosed" => {
                from_json(payload).map(|e| ChargeEvent::Review(ReviewEvent::Closed(e)))
            }
            "ChargeFailedOver" => from_json(payload).map(ChargeEvent::FailedOver),
            "ChargeAuthorized" => from_json(payload).map(ChargeEvent::Authorized),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    /// Requested; the gateway's answer is not recorded yet.
    Pending,
    /// Held by fraud screening until a review approves (then it is charged) or rejects it.
    InReview,
    Succeeded,
    Failed,
}

impl ChargeStatus {
    /// The snake_case name, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ChargeStatus::Pending => "pending",
            ChargeStatus::InReview => "in_review",
            ChargeStatus::Succeeded => "succeeded",
            ChargeStatus::Failed => "failed",
        }
    }
}

/// The folded state of one charge stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub id: ChargeId,
    pub amount: Money,
    pub customer_id: Option<CustomerId>,
    pub payment_method: String,
    pub description: Option<String>,
    pub gateway: String,
    pub gateway_key: String,
    #[serde(default)]
    pub off_session: bool,
    #[serde(default)]
    pub gateway_customer: Option<String>,
    /// Authorized first, captured after screening the gateway's risk level.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capture_later: bool,
    pub request_fingerprint: Option<String>,
    pub status: ChargeStatus,
    pub gateway_charge_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub created: DateTime<Utc>,
    /// Every refund of this charge, in request order.
    pub refunds: Vec<refund::Refund>,
    /// Disputes the gateway reported, in the order they opened.
    #[serde(default)]
    pub disputes: Vec<dispute::Dispute>,
    /// What fraud screening decided, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraud: Option<fraud::Assessment>,
    /// A review's verdict: approved (`true`) or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_closed: Option<bool>,
    /// The gateway took it in and settles it later: never asked again, its webhook decides.
    #[serde(default)]
    pub processing: bool,
    /// Since when the charge's gateway may have seen its key (requested, approved, or moved
    /// there): its idempotency window counts from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_since: Option<DateTime<Utc>>,
    /// Authorized at the gateway (`gateway_charge_id`), not captured yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorized: bool,
    /// The gateway's risk level, as it reported it with the authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<String>,
}

/// What may be asked of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeCommand {
    Request {
        charge_id: ChargeId,
        amount: Money,
        customer_id: Option<CustomerId>,
        payment_method: String,
        description: Option<String>,
        gateway: String,
        off_session: bool,
        gateway_customer: Option<String>,
        capture_later: bool,
        request_fingerprint: Option<String>,
    },
    /// The gateway authorized it (capture later), with its risk level.
    RecordAuthorization {
        gateway_charge_id: String,
        risk_level: Option<String>,
    },
    RecordSuccess {
        gateway_charge_id: String,
    },
    /// The gateway took it in; its webhook settles it.
    RecordProcessing {
        gateway_charge_id: String,
    },
    RecordFailure {
        gateway_charge_id: Option<String>,
        failure_code: String,
        failure_message: String,
    },
}

/// Why a charge command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChargeError {
    #[error("amount must be a positive integer of minor units")]
    AmountNotPositive,
    #[error("amount must be at most {CHARGE_MAX_MINOR} minor units")]
    AmountTooLarge,
    #[error("payment_method must be a gateway token of 1 to 255 printable characters")]
    InvalidPaymentMethod,
    #[error("description must be at most 1000 characters, without NUL")]
    DescriptionTooLong,
    #[error("charge {0} exists already")]
    AlreadyRequested(ChargeId),
    #[error("no such charge")]
    NotRequested,
    #[error("the outcome of charge {0} is recorded already")]
    OutcomeRecorded(ChargeId),
    #[error("payment methods at gateway `{0}` cannot be charged: that gateway is not configured")]
    GatewayNotConfigured(String),
    #[error("charge {0} is not in review (or its review was closed the other way)")]
    NotInReview(ChargeId),
}

/// Pure decision: which events a command produces from the current state.
pub fn decide(
    state: Option<&Charge>,
    command: ChargeCommand,
) -> Result<Vec<ChargeEvent>, ChargeError> {
    match command {
        ChargeCommand::Request {
            charge_id,
            amount,
            customer_id,
            payment_method,
            description,
            gateway,
            off_session,
            gateway_customer,
            capture_later,
            request_fingerprint,
        } => {
            if let Some(existing) = state {
                return Err(ChargeError::AlreadyRequested(existing.id));
            }
            if amount.amount_minor() <= 0 {
                return Err(ChargeError::AmountNotPositive);
            }
            if amount.amount_minor() > CHARGE_MAX_MINOR {
                return Err(ChargeError::AmountTooLarge);
            }
            let pm_ok = !payment_method.is_empty()
                && payment_method.len() <= 255
                && payment_method.chars().all(|c| c.is_ascii_graphic());
            if !pm_ok {
                return Err(ChargeError::InvalidPaymentMethod);
            }
            if description
                .as_ref()
                .is_some_and(|d| d.chars().count() > 1000 || d.contains('\0'))
            {
                return Err(ChargeError::DescriptionTooLong);
            }
            Ok(vec![ChargeEvent::Requested(ChargeRequested {
                charge_id,
                amount: amount.amount_minor(),
                currency: amount.currency(),
                customer_id,
                payment_method,
                description,
                gateway,
                gateway_key: format!("charge-{charge_id}"),
                off_session,
                gateway_customer,
                capture_later,
                request_fingerprint,
            })])
        }
        ChargeCommand::RecordAuthorization {
            gateway_charge_id,
            risk_level,
        } => {
            let charge = pending(state)?;
            if charge.authorized {
                return Ok(Vec::new());
            }
            Ok(vec![ChargeEvent::Authorized(
                authorization::ChargeAuthorized {
                    charge_id: charge.id,
                    gateway_charge_id,
                    risk_level,
                },
            )])
        }
        ChargeCommand::RecordSuccess { gateway_charge_id } => {
            let charge = pending(state)?;
            Ok(vec![ChargeEvent::Succeeded(ChargeSucceeded {
                charge_id: charge.id,
                gateway_charge_id,
            })])
        }
        ChargeCommand::RecordProcessing { gateway_charge_id } => {
            let charge = pending(state)?;
            if charge.processing {
                return Ok(Vec::new());
            }
            Ok(vec![ChargeEvent::Processing(ChargeProcessing {
                charge_id: charge.id,
                gateway_charge_id,
            })])
        }
        ChargeCommand::RecordFailure {
            gateway_charge_id,
            failure_code,
            failure_message,
        } => {
            let charge = pending(state)?;
            Ok(vec![ChargeEvent::Failed(ChargeFailed {
                charge_id: charge.id,
                gateway_charge_id,
                failure_code,
                failure_message,
            })])
        }
    }
}

fn pending(state: Option<&Charge>) -> Result<&Charge, ChargeError> {
    match state {
        None => Err(ChargeError::NotRequested),
        Some(c) if c.status != ChargeStatus::Pending => Err(ChargeError::OutcomeRecorded(c.id)),
        Some(c) => Ok(c),
    }
}

/// Pure fold: the state after one more event. `at` is the event's business time.
pub fn evolve(state: Option<Charge>, event: &ChargeEvent, at: DateTime<Utc>) -> Option<Charge> {
    match (state, event) {
        (None, ChargeEvent::Requested(e)) => Some(Charge {
            id: e.charge_id,
            amount: Money::new(e.amount, e.currency),
            customer_id: e.customer_id,
            payment_method: e.payment_method.clone(),
            description: e.description.clone(),
            gateway: e.gateway.clone(),
            gateway_key: e.gateway_key.clone(),
            off_session: e.off_session,
            gateway_customer: e.gateway_customer.clone(),
            capture_later: e.capture_later,
            request_fingerprint: e.request_fingerprint.clone(),
            status: ChargeStatus::Pending,
            gateway_charge_id: None,
            failure_code: None,
            failure_message: None,
            created: at,
            refunds: Vec::new(),
            disputes: Vec::new(),
            fraud: None,
            review_closed: None,
            processing: false,
            gateway_since: Some(at),
            authorized: false,
            risk_level: None,
        }),
        (Some(mut c), ChargeEvent::Refund(e)) => {
            refund::apply(&mut c, e, at);
            Some(c)
        }
        (Some(mut c), ChargeEvent::Dispute(e)) => {
            dispute::apply(&mut c, e, at);
            Some(c)
        }
        (Some(mut c), ChargeEvent::Review(e)) => {
            review::apply(&mut c, e);
            if matches!(e, ReviewEvent::Closed(r) if r.approved) {
                c.gateway_since = Some(at);
            }
            Some(c)
        }
        (Some(mut c), ChargeEvent::FailedOver(e)) => {
            failover::apply(&mut c, e);
            c.gateway_since = Some(at);
            Some(c)
        }
        (Some(mut c), ChargeEvent::Authorized(e)) => {
            authorization::apply(&mut c, e);
            Some(c)
        }
        (Some(mut c), ChargeEvent::Processing(e)) => {
            c.processing = true;
            c.gateway_charge_id = Some(e.gateway_charge_id.clone());
            Some(c)
        }
        (Some(mut c), ChargeEvent::Succeeded(e)) => {
            c.status = ChargeStatus::Succeeded;
            c.authorized = false;
            c.gateway_charge_id = Some(e.gateway_charge_id.clone());
            Some(c)
        }
        (Some(mut c), ChargeEvent::Failed(e)) => {
            c.status = ChargeStatus::Failed;
            c.authorized = false;
            c.gateway_charge_id = e.gateway_charge_id.clone();
            c.failure_code = Some(e.failure_code.clone());
            c.failure_message = Some(e.failure_message.clone());
            Some(c)
        }
        // Events out of order cannot be written (decide refuses them); ignore rather than panic.
        (state, _) => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(amount: i64) -> ChargeCommand {
        ChargeCommand::Request {
            charge_id: ChargeId::derived("t"),
            amount: Money::new(amount, Currency::USD),
            customer_id: None,
            payment_method: "tok_visa".into(),
            description: None,
            gateway: "sandbox".into(),
            off_session: false,
            gateway_customer: None,
            capture_later: false,
            request_fingerprint: Some("f".into()),
        }
    }

    fn request_with_token(token: &str) -> ChargeCommand {
        match request(1) {
            ChargeCommand::Request {
                payment_method: _,
                charge_id,
                amount,
                customer_id,
                description,
                gateway,
                off_session,
                gateway_customer,
                capture_later,
                request_fingerprint,
            } => ChargeCommand::Request {
                charge_id,
                amount,
                customer_id,
                payment_method: token.into(),
                description,
                gateway,
                off_session,
                gateway_customer,
                capture_later,
                request_fingerprint,
            },
            other => other,
        }
    }

    fn fold(events: &[ChargeEvent]) -> Option<Charge> {
        events.iter().fold(None, |s, e| evolve(s, e, Utc::now()))
    }

    #[test]
    fn a_request_then_one_outcome() {
        let requested = decide(None, request(1000)).unwrap();
        let state = fold(&requested);
        let charge = state.as_ref().unwrap();
        assert_eq!(charge.status, ChargeStatus::Pending);
        assert_eq!(charge.amount, Money::new(1000, Currency::USD));
        assert_eq!(charge.gateway_key, format!("charge-{}", charge.id));

        let ok = decide(
            state.as_ref(),
            ChargeCommand::RecordSuccess {
                gateway_charge_id: "g".into(),
            },
        )
        .unwrap();
        let done = fold(&[requested.clone(), ok].concat()).unwrap();
        assert_eq!(done.status, ChargeStatus::Succeeded);
        let again = decide(
            Some(&done),
            ChargeCommand::RecordSuccess {
                gateway_charge_id: "g".into(),
            },
        );
        assert_eq!(again, Err(ChargeError::OutcomeRecorded(done.id)));
        assert_eq!(
            decide(Some(&done), request(1000)),
            Err(ChargeError::AlreadyRequested(done.id))
        );
    }

    #[test]
    fn amounts_and_tokens_are_checked() {
        assert_eq!(
            decide(None, request(0)),
            Err(ChargeError::AmountNotPositive)
        );
        assert_eq!(
            decide(None, request(-5)),
            Err(ChargeError::AmountNotPositive)
        );
        assert_eq!(
            decide(None, request(CHARGE_MAX_MINOR + 1)),
            Err(ChargeError::AmountTooLarge)
        );
        assert!(decide(None, request(CHARGE_MAX_MINOR)).is_ok());
        for pm in ["", "tok visa", "tok_\u{e9}"] {
            let cmd = request_with_token(pm);
            assert_eq!(
                decide(None, cmd),
                Err(ChargeError::InvalidPaymentMethod),
                "{pm:?}"
            );
        }
    }

    #[test]
    fn an_outcome_needs_a_request() {
        let cmd = ChargeCommand::RecordFailure {
            gateway_charge_id: None,
            failure_code: "card_declined".into(),
            failure_message: "declined".into(),
        };
        assert_eq!(decide(None, cmd), Err(ChargeError::NotRequested));
    }

    #[test]
    fn events_round_trip_through_the_envelope() {
        let events = decide(None, request(1234)).unwrap();
        for e in &events {
            assert_eq!(
                ChargeEvent::from_stored(e.event_type(), &e.payload()).as_ref(),
                Some(e)
            );
        }
    }

    #[test]
    fn refunds_never_exceed_the_charge() {
        use ledger::ids::RefundId;
        use refund::{RefundCommand, RefundError, decide_refund};

        let mut events = decide(None, request(1000)).unwrap();
        let pending = fold(&events).unwrap();
        let early = RefundCommand::Request {
            refund_id: RefundId::new(),
            amount: None,
            reason: None,
            request_fingerprint: None,
        };
        assert_eq!(
            decide_refund(&pending, early),
            Err(RefundError::ChargeNotRefundable)
        );
        events.extend(
            decide(
                Some(&pending),
                ChargeCommand::RecordSuccess {
                    gateway_charge_id: "g".into(),
                },
            )
            .unwrap(),
        );
        let charge = fold(&events).unwrap();

        let ask = |amount: Option<i64>, reason: Option<&str>| RefundCommand::Request {
            refund_id: RefundId::new(),
            amount,
            reason: reason.map(str::to_string),
            request_fingerprint: None,
        };
        assert_eq!(
            decide_refund(&charge, ask(Some(0), None)),
            Err(RefundError::AmountNotPositive)
        );
        assert_eq!(
            decide_refund(&charge, ask(Some(1001), None)),
            Err(RefundError::AmountTooLarge { refundable: 1000 })
        );
        assert_eq!(
            decide_refund(&charge, ask(Some(1), Some("bored"))),
            Err(RefundError::ReasonInvalid)
        );

        // 600 pending, then 400 more is exactly the rest; a pending refund reserves its amount.
        let first = decide_refund(&charge, ask(Some(600), Some("duplicate"))).unwrap();
        let events: Vec<ChargeEvent> = events
            .into_iter()
            .chain(first.into_iter().map(ChargeEvent::Refund))
            .collect();
        let charge = fold(&events).unwrap();
        assert_eq!((charge.refundable(), charge.amount_refunded()), (400, 0));
        assert_eq!(
            decide_refund(&charge, ask(Some(401), None)),
            Err(RefundError::AmountTooLarge { refundable: 400 })
        );
        let rest = decide_refund(&charge, ask(None, None)).unwrap();
        let events: Vec<ChargeEvent> = events
            .into_iter()
            .chain(rest.into_iter().map(ChargeEvent::Refund))
            .collect();
        let charge = fold(&events).unwrap();
        assert_eq!(charge.refundable(), 0);
        assert_eq!(
            decide_refund(&charge, ask(Some(1), None)),
            Err(RefundError::AlreadyRefunded(charge.id))
        );

        // A failed refund gives its amount back; a succeeded one counts as refunded.
        let (a, b) = (charge.refunds[0].id, charge.refunds[1].id);
        let failed = decide_refund(
            &charge,
            RefundCommand::RecordFailure {
                refund_id: a,
                failure_reason: "x".into(),
            },
        )
        .unwrap();
        let done = decide_refund(
            &charge,
            RefundCommand::RecordSuccess {
                refund_id: b,
                gateway_refund_id: "r".into(),
            },
        )
        .unwrap();
        let events: Vec<ChargeEvent> = events
            .into_iter()
            .chain(failed.into_iter().chain(done).map(ChargeEvent::Refund))
            .collect();
        let charge = fold(&events).unwrap();
        assert_eq!((charge.refundable(), charge.amount_refunded()), (600, 400));
        assert_eq!(
            decide_refund(
                &charge,
                RefundCommand::RecordSuccess {
                    refund_id: b,
                    gateway_refund_id: "r".into()
                }
            ),
            Err(RefundError::OutcomeRecorded(b))
        );
        for e in &events {
            assert_eq!(
                ChargeEvent::from_stored(e.event_type(), &e.payload()).as_ref(),
                Some(e)
            );
        }
    }
}
