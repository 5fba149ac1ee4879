//! The folded state of an invoice and how each event changes it.

use std::fmt;

use chrono::{DateTime, Utc};
use ledger::ids::{ChargeId, CreditNoteId, CustomerId, InvoiceId, SubscriptionId};
use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use super::events::{BillingReason, CreditNoteReason, InvoiceDrafted, InvoiceEvent};
use super::lines::{InvoiceLine, Period};

/// Where an invoice is in its life (Stripe's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Being prepared; may still be voided, not paid.
    Draft,
    /// Finalized (numbered) and awaiting payment.
    Open,
    /// Nothing left to pay.
    Paid,
    /// Cancelled; nothing is owed.
    Void,
    /// Not expected to be paid; may still be paid or voided.
    Uncollectible,
}

impl InvoiceStatus {
    /// The snake_case name, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
            InvoiceStatus::Uncollectible => "uncollectible",
        }
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credit note issued against an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCreditNote {
    pub id: CreditNoteId,
    pub amount: Money,
    pub reason: CreditNoteReason,
    /// Issued after payment: a refund.
    pub refund: bool,
}

/// The folded state of an invoice. Amounts are in `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: InvoiceId,
    pub customer_id: CustomerId,
    pub subscription_id: Option<SubscriptionId>,
    pub currency: Currency,
    pub status: InvoiceStatus,
    /// Given on finalization.
    pub number: Option<String>,
    pub billing_reason: BillingReason,
    pub period: Option<Period>,
    pub lines: Vec<InvoiceLine>,
    pub subtotal: Money,
    pub tax: Money,
    pub total: Money,
    pub credit_applied: Money,
    /// A debt the customer had (a positive balance), collected with this invoice.
    #[serde(default)]
    pub owed_applied: Option<Money>,
    pub credit_to_balance: Money,
    /// What the customer owes: the draft's amount due less credit notes issued before payment.
    pub amount_due: Money,
    pub amount_paid: Money,
    /// Still to be paid: `amount_due` until paid, then 0.
    pub amount_remaining: Money,
    pub credit_notes: Vec<IssuedCreditNote>,
    /// Sum of the credit notes issued before payment.
    pub pre_payment_credit_notes_amount: Money,
    /// Sum of the credit notes issued after payment (refunds).
    pub post_payment_credit_notes_amount: Money,
    /// The highest payment attempt seen.
    pub attempt_count: u32,
    pub attempted_charges: Vec<ChargeId>,
    /// When the last payment attempt started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub failed_charges: Vec<ChargeId>,
    pub last_failure_code: Option<String>,
    pub next_payment_attempt: Option<DateTime<Utc>>,
    /// The charge that paid the invoice (none when nothing was left to pay).
    pub paid_by: Option<ChargeId>,
    pub due_date: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
    pub finalized_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub voided_at: Option<DateTime<Utc>>,
    pub marked_uncollectible_at: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
}

impl Invoice {
    /// The attempt whose outcome is not recorded (its charge is pending, or the flow stopped
    /// between the charge and the record): to be completed with the same charge, never a new one.
    #[must_use]
    pub fn unresolved_attempt(&self) -> Option<u32> {
        let payable = matches!(
            self.status,
            InvoiceStatus::Open | InvoiceStatus::Uncollectible
        );
        let last = self.attempted_charges.last()?;
        (payable && !self.failed_charges.contains(last)).then_some(self.attempt_count)
    }

    /// The state right after `InvoiceDrafted`.
    pub(super) fn drafted(e: &InvoiceDrafted, at: DateTime<Utc>) -> Invoice {
        let money = |a| Money::new(a, e.currency);
        let zero = Money::zero(e.currency);
        Invoice {
            id: e.invoice_id,
            customer_id: e.customer_id,
            subscription_id: e.subscription_id,
            currency: e.currency,
            status: InvoiceStatus::Draft,
            number: None,
            billing_reason: e.billing_reason,
            period: e.period_start.zip(e.period_end),
            lines: e.lines.clone(),
            subtotal: money(e.totals.subtotal),
            tax: money(e.totals.tax),
            total: money(e.totals.total),
            credit_applied: money(e.totals.credit_applied),
            owed_applied: (e.totals.owed_applied != 0).then(|| money(e.totals.owed_applied)),
            credit_to_balance: money(e.totals.credit_to_balance),
            amount_due: money(e.totals.amount_due),
            amount_paid: zero,
            amount_remaining: money(e.totals.amount_due),
            credit_notes: Vec::new(),
            pre_payment_credit_notes_amount: zero,
            post_payment_credit_notes_amount: zero,
            attempt_count: 0,
            attempted_charges: Vec::new(),
            last_attempt_at: None,
            failed_charges: Vec::new(),
            last_failure_code: None,
            next_payment_attempt: None,
            paid_by: None,
            due_date: None,
            created: at,
            finalized_at: None,
            paid_at: None,
            voided_at: None,
            marked_uncollectible_at: None,
            last_sent_at: None,
        }
    }

    /// The customer's earlier debt this invoice collects (zero when none).
    #[must_use]
    pub fn owed(&self) -> Money {
        self.owed_applied.unwrap_or(Money::zero(self.currency))
    }

    /// What may still be refunded: paid less the refunds issued so far.
    #[must_use]
    pub fn refundable(&self) -> Money {
        self.minus(
            self.amount_paid,
            self.post_payment_credit_notes_amount.amount_minor(),
        )
    }

    /// `m − minor`; `decide` keeps every stored difference in range, so this never saturates.
    fn minus(&self, m: Money, minor: i64) -> Money {
        Money::new(m.amount_minor().saturating_sub(minor), self.currency)
    }

    fn plus(&self, m: Money, minor: i64) -> Money {
        Money::new(m.amount_minor().saturating_add(minor), self.currency)
    }

    /// Applies any event but `InvoiceDrafted` (which starts the stream).
    pub(super) fn apply(&mut self, event: &InvoiceEvent, at: DateTime<Utc>) {
        match event {
            InvoiceEvent::Drafted(_) => {}
            InvoiceEvent::Finalized(e) => {
                self.status = InvoiceStatus::Open;
                self.number = Some(e.number.clone());
                self.due_date = e.due_date;
                self.finalized_at = Some(at);
            }
            InvoiceEvent::PaymentAttempted(e) => {
                self.attempt_count = self.attempt_count.max(e.attempt);
                self.attempted_charges.push(e.charge_id);
                self.last_attempt_at = Some(at);
            }
            InvoiceEvent::Paid(e) => {
                self.status = InvoiceStatus::Paid;
                self.amount_paid = Money::new(e.amount_paid, self.currency);
                self.amount_remaining = Money::zero(self.currency);
                self.paid_by = e.charge_id;
                self.paid_at = Some(at);
                self.next_payment_attempt = None;
            }
            InvoiceEvent::PaymentFailed(e) => {
                self.attempt_count = self.attempt_count.max(e.attempt);
                self.failed_charges.push(e.charge_id);
                self.last_failure_code = Some(e.failure_code.clone());
                self.next_payment_attempt = e.next_attempt_at;
            }
            InvoiceEvent::Voided(_) => {
                self.status = InvoiceStatus::Void;
                self.voided_at = Some(at);
                self.next_payment_attempt = None;
            }
            InvoiceEvent::MarkedUncollectible(_) => {
                self.status = InvoiceStatus::Uncollectible;
                self.marked_uncollectible_at = Some(at);
                self.next_payment_attempt = None;
            }
            InvoiceEvent::CreditNoteIssued(e) => {
                if e.refund {
                    self.post_payment_credit_notes_amount =
                        self.plus(self.post_payment_credit_notes_amount, e.amount);
                } else {
                    self.pre_payment_credit_notes_amount =
                        self.plus(self.pre_payment_credit_notes_amount, e.amount);
                    self.amount_due = self.minus(self.amount_due, e.amount);
                    self.amount_remaining = Money::new(e.amount_remaining, self.currency);
                }
                self.credit_notes.push(IssuedCreditNote {
                    id: e.credit_note_id,
                    amount: Money::new(e.amount, self.currency),
                    reason: e.reason,
                    refund: e.refund,
                });
            }
            InvoiceEvent::Sent(_) => self.last_sent_at = Some(at),
        }
    }
}
