//! Refunds of a charge: requested, then the gateway's outcome — in the charge's own stream, so
//! the rule "never beyond what was captured" is checked against every refund of the charge under
//! one expected version.

use chrono::{DateTime, Utc};
use ledger::ids::{ChargeId, RefundId};
use ledger::money::Money;
use serde::{Deserialize, Serialize};

use super::{Charge, ChargeStatus};

/// Reasons a refund may give (Stripe's).
pub const REFUND_REASONS: [&str; 3] = ["duplicate", "fraudulent", "requested_by_customer"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequested {
    pub charge_id: ChargeId,
    pub refund_id: RefundId,
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The idempotency key every gateway call for this refund uses.
    pub gateway_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundSucceeded {
    pub charge_id: ChargeId,
    pub refund_id: RefundId,
    pub gateway_refund_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundFailed {
    pub charge_id: ChargeId,
    pub refund_id: RefundId,
    pub failure_reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

/// One refund of a charge, as folded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: RefundId,
    pub amount: Money,
    pub reason: Option<String>,
    pub gateway_key: String,
    pub request_fingerprint: Option<String>,
    pub status: RefundStatus,
    pub gateway_refund_id: Option<String>,
    pub failure_reason: Option<String>,
    pub created: DateTime<Utc>,
}

/// What may be asked about refunds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundCommand {
    /// `amount: None` refunds the rest.
    Request {
        refund_id: RefundId,
        amount: Option<i64>,
        reason: Option<String>,
        request_fingerprint: Option<String>,
    },
    RecordSuccess {
        refund_id: RefundId,
        gateway_refund_id: String,
    },
    RecordFailure {
        refund_id: RefundId,
        failure_reason: String,
    },
}

/// Why a refund command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("only a succeeded charge can be refunded")]
    ChargeNotRefundable,
    #[error("charge {0} has been refunded in full already")]
    AlreadyRefunded(ChargeId),
    #[error("amount must be a positive integer of minor units")]
    AmountNotPositive,
    #[error("amount exceeds what is left to refund ({refundable} minor units)")]
    AmountTooLarge { refundable: i64 },
    #[error("reason must be one of duplicate, fraudulent, requested_by_customer")]
    ReasonInvalid,
    #[error("refund {0} exists already")]
    AlreadyRequested(RefundId),
    #[error("no such refund")]
    NotFound,
    #[error("the outcome of refund {0} is recorded already")]
    OutcomeRecorded(RefundId),
}

impl Charge {
    /// Refunded and confirmed by the gateway.
    pub fn amount_refunded(&self) -> i64 {
        self.refunds_total(|s| s == RefundStatus::Succeeded)
    }

    /// What may still be refunded: the amount less every refund not failed (pending ones are
    /// reserved until their outcome).
    pub fn refundable(&self) -> i64 {
        self.amount.amount_minor() - self.refunds_total(|s| s != RefundStatus::Failed)
    }

    pub fn refund(&self, id: RefundId) -> Option<&Refund> {
        self.refunds.iter().find(|r| r.id == id)
    }

    fn refunds_total(&self, counted: impl Fn(RefundStatus) -> bool) -> i64 {
        // Each refund is ≤ the charge amount (≤ 99,999,999) and their sum is bounded by it.
        self.refunds
            .iter()
            .filter(|r| counted(r.status))
            .map(|r| r.amount.amount_minor())
            .sum()
    }
}

/// The refund events a command produces; pure.
pub fn decide_refund(
    charge: &Charge,
    command: RefundCommand,
) -> Result<Vec<RefundEvent>, RefundError> {
    match command {
        RefundCommand::Request {
            refund_id,
            amount,
            reason,
            request_fingerprint,
        } => {
            if charge.refund(refund_id).is_some() {
                return Err(RefundError::AlreadyRequested(refund_id));
            }
            if charge.status != ChargeStatus::Succeeded {
                return Err(RefundError::ChargeNotRefundable);
            }
            if reason
                .as_deref()
                .is_some_and(|r| !REFUND_REASONS.contains(&r))
            {
                return Err(RefundError::ReasonInvalid);
            }
            let refundable = charge.refundable();
            if refundable <= 0 {
                return Err(RefundError::AlreadyRefunded(charge.id));
            }
            let amount = amount.unwrap_or(refundable);
            if amount <= 0 {
                return Err(RefundError::AmountNotPositive);
            }
            if amount > refundable {
                return Err(RefundError::AmountTooLarge { refundable });
            }
            Ok(vec![RefundEvent::Requested(RefundRequested {
                charge_id: charge.id,
                refund_id,
                amount,
                reason,
                gateway_key: format!("refund-{refund_id}"),
                request_fingerprint,
            })])
        }
        RefundCommand::RecordSuccess {
            refund_id,
            gateway_refund_id,
        } => {
            pending(charge, refund_id)?;
            Ok(vec![RefundEvent::Succeeded(RefundSucceeded {
                charge_id: charge.id,
                refund_id,
                gateway_refund_id,
            })])
        }
        RefundCommand::RecordFailure {
            refund_id,
            failure_reason,
        } => {
            pending(charge, refund_id)?;
            Ok(vec![RefundEvent::Failed(RefundFailed {
                charge_id: charge.id,
                refund_id,
                failure_reason,
            })])
        }
    }
}

fn pending(charge: &Charge, id: RefundId) -> Result<(), RefundError> {
    match charge.refund(id) {
        None => Err(RefundError::NotFound),
        Some(r) if r.status != RefundStatus::Pending => Err(RefundError::OutcomeRecorded(id)),
        Some(_) => Ok(()),
    }
}

/// The refund events of a charge stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundEvent {
    Requested(RefundRequested),
    Succeeded(RefundSucceeded),
    Failed(RefundFailed),
}

/// Folds one refund event into the charge.
pub(super) fn apply(charge: &mut Charge, event: &RefundEvent, at: DateTime<Utc>) {
    match event {
        RefundEvent::Requested(e) => charge.refunds.push(Refund {
            id: e.refund_id,
            amount: Money::new(e.amount, charge.amount.currency()),
            reason: e.reason.clone(),
            gateway_key: e.gateway_key.clone(),
            request_fingerprint: e.request_fingerprint.clone(),
            status: RefundStatus::Pending,
            gateway_refund_id: None,
            failure_reason: None,
            created: at,
        }),
        RefundEvent::Succeeded(e) => {
            if let Some(r) = charge.refunds.iter_mut().find(|r| r.id == e.refund_id) {
                r.status = RefundStatus::Succeeded;
                r.gateway_refund_id = Some(e.gateway_refund_id.clone());
            }
        }
        RefundEvent::Failed(e) => {
            if let Some(r) = charge.refunds.iter_mut().find(|r| r.id == e.refund_id) {
                r.status = RefundStatus::Failed;
                r.failure_reason = Some(e.failure_reason.clone());
            }
        }
    }
}
