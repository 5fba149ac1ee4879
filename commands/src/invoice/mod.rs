//! Invoices (pure aggregate), with Stripe's semantics.
//!
//! - [`lines`]: the pure [`draft`] function: lines, line taxes and totals (`subtotal`, `tax`,
//!   `total`, `credit_applied`, `amount_due`, `credit_to_balance`), all checked integer minor
//!   units, stored in [`InvoiceDrafted`] so that no reader recomputes them.
//! - [`lifecycle`]: `draft → open → paid | void | uncollectible`, `uncollectible → paid | void`;
//!   finalizing an invoice with nothing due pays it at once. The number is allocated by the
//!   caller (gapless numbering happens outside; see [`format_number`]).
//! - [`credit_note`]: credit notes lower what is due before payment and are refunds after it.
//!
//! Commands whose effect is already recorded (the same charge paid twice, a second void, the
//! same credit note) produce no events.

pub mod credit_note;
pub mod events;
pub mod lifecycle;
pub mod lines;
mod state;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use ledger::ids::{ChargeId, CreditNoteId, InvoiceId};
use ledger::money::{Currency, Money, MoneyError};

use crate::aggregate::Aggregate;

pub use credit_note::credit_note_max;
pub use events::{
    BillingReason, CreditNoteIssued, CreditNoteReason, InvoiceDrafted, InvoiceEvent,
    InvoiceFinalized, InvoiceMarkedUncollectible, InvoicePaid, InvoicePaymentAttempted,
    InvoicePaymentFailed, InvoiceSent, InvoiceVoided,
};
pub use lifecycle::{FAILURE_CODE_MAX_CHARS, NUMBER_MAX_CHARS, format_number};
pub use lines::{
    DESCRIPTION_MAX_CHARS, DraftInput, InvoiceLine, ItemInput, LINES_MAX, LineTax, Period,
    QUANTITY_MAX, TAX_RATES_MAX, Totals, draft, totals,
};
pub use state::{Invoice, InvoiceStatus, IssuedCreditNote};

/// A command on an invoice (parsed and typed by the caller; checked by `decide`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceCommand {
    /// Create the draft (see [`draft`]).
    Draft(DraftInput),
    /// Number the draft and open it; `number` comes from the gapless allocator.
    Finalize {
        number: String,
        /// For invoices sent to be paid by the customer; none when charged automatically.
        due_date: Option<DateTime<Utc>>,
    },
    /// A charge for the open invoice was requested (`attempt` from 1).
    AttemptPayment {
        charge_id: ChargeId,
        attempt: u32,
    },
    /// A charge paid what was left to pay.
    RecordPayment {
        charge_id: ChargeId,
        amount: Money,
    },
    /// A charge failed.
    RecordPaymentFailure {
        charge_id: ChargeId,
        attempt: u32,
        failure_code: String,
        next_attempt_at: Option<DateTime<Utc>>,
    },
    Void,
    MarkUncollectible,
    IssueCreditNote {
        credit_note_id: CreditNoteId,
        /// Positive, in the invoice currency.
        amount: Money,
        reason: CreditNoteReason,
    },
    /// The invoice was sent to the customer.
    MarkSent,
}

/// Why an invoice command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    #[error("no such invoice")]
    NotFound,
    #[error("invoice {0} exists already")]
    AlreadyExists(InvoiceId),
    #[error("an invoice has 1 to {LINES_MAX} lines, not {0}")]
    LineCount(usize),
    #[error("line {index}: {reason}")]
    InvalidLine { index: usize, reason: String },
    #[error("currency mismatch: the invoice is in {expected}, not {found}")]
    CurrencyMismatch { expected: Currency, found: Currency },
    #[error("tax rates: {0}")]
    TaxRatesInvalid(String),
    #[error("period end must be after its start")]
    InvalidPeriod,
    #[error("a subscription invoice needs a subscription_id")]
    SubscriptionRequired,
    #[error("credit_applied must not be negative")]
    CreditAppliedInvalid,
    #[error("amount overflow")]
    Overflow,
    #[error("invoice is {0}; only a draft can be finalized")]
    NotDraft(InvoiceStatus),
    #[error("invoice is a draft; finalize it first")]
    NotFinalized,
    #[error("invoice is {0}, not open")]
    NotOpen(InvoiceStatus),
    #[error("invoice is paid already")]
    AlreadyPaid,
    #[error("invoice is void")]
    Voided,
    #[error("number must be 1 to {NUMBER_MAX_CHARS} printable ASCII characters without spaces")]
    NumberInvalid,
    #[error("due_date must not be in the past")]
    DueDateInPast,
    #[error("attempt must be at least 1")]
    AttemptInvalid,
    #[error("failure_code must be 1 to {FAILURE_CODE_MAX_CHARS} printable ASCII characters")]
    FailureCodeInvalid,
    #[error("payment of {found} does not match the {expected} left to pay")]
    PaymentAmountMismatch { expected: i64, found: i64 },
    #[error("credit note amount must be positive")]
    CreditNoteAmountInvalid,
    #[error("credit note amount exceeds the {max} that may be credited")]
    CreditNoteTooLarge { max: i64 },
}

impl From<MoneyError> for InvoiceError {
    fn from(e: MoneyError) -> Self {
        match e {
            MoneyError::CurrencyMismatch { left, right } => InvoiceError::CurrencyMismatch {
                expected: left,
                found: right,
            },
            MoneyError::Overflow | MoneyError::UnknownCurrency(_) => InvoiceError::Overflow,
        }
    }
}

impl Aggregate for Invoice {
    type Event = InvoiceEvent;
    type Command = InvoiceCommand;
    type Error = InvoiceError;
    const CATEGORY: &'static str = "invoice";

    fn decide(
        state: Option<&Invoice>,
        command: InvoiceCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<InvoiceEvent>, InvoiceError> {
        use InvoiceCommand as C;
        let Some(inv) = state else {
            return match command {
                C::Draft(input) => Ok(vec![InvoiceEvent::Drafted(draft(input)?)]),
                _ => Err(InvoiceError::NotFound),
            };
        };
        match command {
            C::Draft(_) => Err(InvoiceError::AlreadyExists(inv.id)),
            C::Finalize { number, due_date } => lifecycle::finalize(inv, number, due_date, now),
            C::AttemptPayment { charge_id, attempt } => {
                lifecycle::attempt_payment(inv, charge_id, attempt)
            }
            C::RecordPayment { charge_id, amount } => {
                lifecycle::record_payment(inv, charge_id, amount)
            }
            C::RecordPaymentFailure {
                charge_id,
                attempt,
                failure_code,
                next_attempt_at,
            } => lifecycle::record_failure(inv, charge_id, attempt, failure_code, next_attempt_at),
            C::Void => lifecycle::void(inv),
            C::MarkUncollectible => lifecycle::mark_uncollectible(inv),
            C::IssueCreditNote {
                credit_note_id,
                amount,
                reason,
            } => credit_note::issue(inv, credit_note_id, amount, reason),
            C::MarkSent => lifecycle::mark_sent(inv),
        }
    }

    fn evolve(state: Option<Invoice>, event: &InvoiceEvent, at: DateTime<Utc>) -> Option<Invoice> {
        match (state, event) {
            (None, InvoiceEvent::Drafted(e)) => Some(Invoice::drafted(e, at)),
            (Some(mut inv), e) => {
                inv.apply(e, at);
                Some(inv)
            }
            (None, _) => None,
        }
    }
}
