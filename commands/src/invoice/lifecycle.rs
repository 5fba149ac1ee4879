//! Decisions on an existing invoice: finalize, payments, void, uncollectible, sent.
//!
//! Status moves `draft → open → paid | void | uncollectible`, and `uncollectible → paid | void`.
//! Repeating a command whose effect is already recorded (the same charge, a second void)
//! produces no events.

use chrono::{DateTime, Utc};
use ledger::ids::ChargeId;
use ledger::money::Money;

use super::events::{
    InvoiceEvent, InvoiceFinalized, InvoiceMarkedUncollectible, InvoicePaid,
    InvoicePaymentAttempted, InvoicePaymentFailed, InvoiceSent, InvoiceVoided,
};
use super::{Invoice, InvoiceError, InvoiceStatus};

/// Longest invoice number, in characters.
pub const NUMBER_MAX_CHARS: usize = 64;
/// Longest payment failure code, in characters.
pub const FAILURE_CODE_MAX_CHARS: usize = 100;

type Decided = Result<Vec<InvoiceEvent>, InvoiceError>;

/// An invoice number: `prefix`, a dash and `n` with at least six digits (`KB-000001`,
/// `KB-1234567`).
#[must_use]
pub fn format_number(prefix: &str, n: u64) -> String {
    format!("{prefix}-{n:06}")
}

/// The error for a command that needs an open (or uncollectible) invoice.
fn not_payable(status: InvoiceStatus) -> InvoiceError {
    match status {
        InvoiceStatus::Paid => InvoiceError::AlreadyPaid,
        InvoiceStatus::Void => InvoiceError::Voided,
        other => InvoiceError::NotOpen(other),
    }
}

pub(super) fn finalize(
    inv: &Invoice,
    number: String,
    due_date: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Decided {
    if inv.status != InvoiceStatus::Draft {
        return Err(InvoiceError::NotDraft(inv.status));
    }
    let number_ok = (1..=NUMBER_MAX_CHARS).contains(&number.chars().count())
        && number.chars().all(|c| c.is_ascii_graphic());
    if !number_ok {
        return Err(InvoiceError::NumberInvalid);
    }
    if due_date.is_some_and(|d| d < now) {
        return Err(InvoiceError::DueDateInPast);
    }
    let mut events = vec![InvoiceEvent::Finalized(InvoiceFinalized {
        invoice_id: inv.id,
        number,
        due_date,
    })];
    if inv.amount_remaining.amount_minor() == 0 {
        events.push(InvoiceEvent::Paid(InvoicePaid {
            invoice_id: inv.id,
            charge_id: None,
            amount_paid: 0,
        }));
    }
    Ok(events)
}

pub(super) fn attempt_payment(inv: &Invoice, charge_id: ChargeId, attempt: u32) -> Decided {
    if inv.attempted_charges.contains(&charge_id) {
        return Ok(vec![]);
    }
    // Stripe lets an uncollectible invoice be paid after all.
    if !matches!(
        inv.status,
        InvoiceStatus::Open | InvoiceStatus::Uncollectible
    ) {
        return Err(not_payable(inv.status));
    }
    if attempt == 0 {
        return Err(InvoiceError::AttemptInvalid);
    }
    Ok(vec![InvoiceEvent::PaymentAttempted(
        InvoicePaymentAttempted {
            invoice_id: inv.id,
            charge_id,
            attempt,
        },
    )])
}

pub(super) fn record_payment(inv: &Invoice, charge_id: ChargeId, amount: Money) -> Decided {
    match inv.status {
        InvoiceStatus::Paid if inv.paid_by == Some(charge_id) => return Ok(vec![]),
        InvoiceStatus::Open | InvoiceStatus::Uncollectible => {}
        other => return Err(not_payable(other)),
    }
    if amount.currency() != inv.currency {
        return Err(InvoiceError::CurrencyMismatch {
            expected: inv.currency,
            found: amount.currency(),
        });
    }
    if amount != inv.amount_remaining {
        return Err(InvoiceError::PaymentAmountMismatch {
            expected: inv.amount_remaining.amount_minor(),
            found: amount.amount_minor(),
        });
    }
    Ok(vec![InvoiceEvent::Paid(InvoicePaid {
        invoice_id: inv.id,
        charge_id: Some(charge_id),
        amount_paid: amount.amount_minor(),
    })])
}

pub(super) fn record_failure(
    inv: &Invoice,
    charge_id: ChargeId,
    attempt: u32,
    failure_code: String,
    next_attempt_at: Option<DateTime<Utc>>,
) -> Decided {
    if inv.failed_charges.contains(&charge_id) {
        return Ok(vec![]);
    }
    match inv.status {
        InvoiceStatus::Open | InvoiceStatus::Uncollectible => {}
        other => return Err(not_payable(other)),
    }
    if attempt == 0 {
        return Err(InvoiceError::AttemptInvalid);
    }
    let code_ok = (1..=FAILURE_CODE_MAX_CHARS).contains(&failure_code.chars().count())
        && failure_code.chars().all(|c| c.is_ascii_graphic());
    if !code_ok {
        return Err(InvoiceError::FailureCodeInvalid);
    }
    Ok(vec![InvoiceEvent::PaymentFailed(InvoicePaymentFailed {
        invoice_id: inv.id,
        charge_id,
        attempt,
        failure_code,
        next_attempt_at,
    })])
}

pub(super) fn void(inv: &Invoice) -> Decided {
    match inv.status {
        InvoiceStatus::Void => Ok(vec![]),
        InvoiceStatus::Paid => Err(InvoiceError::AlreadyPaid),
        InvoiceStatus::Draft | InvoiceStatus::Open | InvoiceStatus::Uncollectible => {
            Ok(vec![InvoiceEvent::Voided(InvoiceVoided {
                invoice_id: inv.id,
            })])
        }
    }
}

pub(super) fn mark_uncollectible(inv: &Invoice) -> Decided {
    match inv.status {
        InvoiceStatus::Uncollectible => Ok(vec![]),
        InvoiceStatus::Open => Ok(vec![InvoiceEvent::MarkedUncollectible(
            InvoiceMarkedUncollectible { invoice_id: inv.id },
        )]),
        other => Err(not_payable(other)),
    }
}

pub(super) fn mark_sent(inv: &Invoice) -> Decided {
    match inv.status {
        InvoiceStatus::Draft => Err(InvoiceError::NotFinalized),
        InvoiceStatus::Void => Err(InvoiceError::Voided),
        InvoiceStatus::Open | InvoiceStatus::Paid | InvoiceStatus::Uncollectible => {
            Ok(vec![InvoiceEvent::Sent(InvoiceSent { invoice_id: inv.id })])
        }
    }
}
