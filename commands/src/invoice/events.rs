//! The events of an invoice stream and their JSON payloads (stable snake_case field names;
//! amounts in integer minor units of the invoice currency, given once in `InvoiceDrafted`).

use chrono::{DateTime, Utc};
use ledger::ids::{ChargeId, CreditNoteId, CustomerId, InvoiceId, SubscriptionId};
use ledger::money::Currency;
use serde::{Deserialize, Serialize};

use super::lines::{InvoiceLine, Totals};
use crate::stored::{DomainEvent, from_json, to_json};

/// Why an invoice was created (Stripe's `billing_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BillingReason {
    /// The first invoice of a new subscription.
    SubscriptionCreate,
    /// A renewal.
    SubscriptionCycle,
    /// A plan or quantity change billed at once (proration lines).
    SubscriptionUpdate,
    /// A one-off invoice.
    Manual,
}

/// Why a credit note was issued (Stripe's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditNoteReason {
    Duplicate,
    Fraudulent,
    OrderChange,
    ProductUnsatisfactory,
}

/// A draft invoice, with its lines and every total computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDrafted {
    pub invoice_id: InvoiceId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub subscription_id: Option<SubscriptionId>,
    /// The subscription period billed.
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub billing_reason: BillingReason,
    pub lines: Vec<InvoiceLine>,
    /// `subtotal`, `tax`, `total`, `credit_applied`, `amount_due`, `credit_to_balance`.
    #[serde(flatten)]
    pub totals: Totals,
}

/// The invoice got its number and can be paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceFinalized {
    pub invoice_id: InvoiceId,
    pub number: String,
    pub due_date: Option<DateTime<Utc>>,
}

/// A charge for the invoice was requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaymentAttempted {
    pub invoice_id: InvoiceId,
    pub charge_id: ChargeId,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// The invoice is paid: by a charge, or with nothing left to pay (`charge_id` none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaid {
    pub invoice_id: InvoiceId,
    pub charge_id: Option<ChargeId>,
    pub amount_paid: i64,
}

/// A charge for the invoice failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePaymentFailed {
    pub invoice_id: InvoiceId,
    pub charge_id: ChargeId,
    pub attempt: u32,
    pub failure_code: String,
    /// When dunning retries, if it does.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The invoice is void: nothing is owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceVoided {
    pub invoice_id: InvoiceId,
}

/// The invoice is not expected to be paid (it may still be, or be voided).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceMarkedUncollectible {
    pub invoice_id: InvoiceId,
}

/// A credit note: before payment it lowers what is due, after payment it is a refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNoteIssued {
    pub invoice_id: InvoiceId,
    pub credit_note_id: CreditNoteId,
    /// Positive, in minor units of the invoice currency.
    pub amount: i64,
    pub reason: CreditNoteReason,
    /// The invoice was paid: the amount is to be refunded.
    pub refund: bool,
    /// What is left to pay on the invoice after this note (0 for a refund).
    pub amount_remaining: i64,
}

/// The invoice was sent to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSent {
    pub invoice_id: InvoiceId,
}

/// Every event of an invoice stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceEvent {
    Drafted(InvoiceDrafted),
    Finalized(InvoiceFinalized),
    PaymentAttempted(InvoicePaymentAttempted),
    Paid(InvoicePaid),
    PaymentFailed(InvoicePaymentFailed),
    Voided(InvoiceVoided),
    MarkedUncollectible(InvoiceMarkedUncollectible),
    CreditNoteIssued(CreditNoteIssued),
    Sent(InvoiceSent),
}

impl InvoiceEvent {
    /// The invoice the event belongs to.
    #[must_use]
    pub fn invoice_id(&self) -> InvoiceId {
        match self {
            InvoiceEvent::Drafted(e) => e.invoice_id,
            InvoiceEvent::Finalized(e) => e.invoice_id,
            InvoiceEvent::PaymentAttempted(e) => e.invoice_id,
            InvoiceEvent::Paid(e) => e.invoice_id,
            InvoiceEvent::PaymentFailed(e) => e.invoice_id,
            InvoiceEvent::Voided(e) => e.invoice_id,
            InvoiceEvent::MarkedUncollectible(e) => e.invoice_id,
            InvoiceEvent::CreditNoteIssued(e) => e.invoice_id,
            InvoiceEvent::Sent(e) => e.invoice_id,
        }
    }
}

impl DomainEvent for InvoiceEvent {
    fn event_type(&self) -> &'static str {
        match self {
            InvoiceEvent::Drafted(_) => "InvoiceDrafted",
            InvoiceEvent::Finalized(_) => "InvoiceFinalized",
            InvoiceEvent::PaymentAttempted(_) => "InvoicePaymentAttempted",
            InvoiceEvent::Paid(_) => "InvoicePaid",
            InvoiceEvent::PaymentFailed(_) => "InvoicePaymentFailed",
            InvoiceEvent::Voided(_) => "InvoiceVoided",
            InvoiceEvent::MarkedUncollectible(_) => "InvoiceMarkedUncollectible",
            InvoiceEvent::CreditNoteIssued(_) => "CreditNoteIssued",
            InvoiceEvent::Sent(_) => "InvoiceSent",
        }
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            InvoiceEvent::Drafted(e) => to_json(e),
            InvoiceEvent::Finalized(e) => to_json(e),
            InvoiceEvent::PaymentAttempted(e) => to_json(e),
            InvoiceEvent::Paid(e) => to_json(e),
            InvoiceEvent::PaymentFailed(e) => to_json(e),
            InvoiceEvent::Voided(e) => to_json(e),
            InvoiceEvent::MarkedUncollectible(e) => to_json(e),
            InvoiceEvent::CreditNoteIssued(e) => to_json(e),
            InvoiceEvent::Sent(e) => to_json(e),
        }
    }

    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        match event_type {
            "InvoiceDrafted" => from_json(payload).map(InvoiceEvent::Drafted),
            "InvoiceFinalized" => from_json(payload).map(InvoiceEvent::Finalized),
            "InvoicePaymentAttempted" => from_json(payload).map(InvoiceEvent::PaymentAttempted),
            "InvoicePaid" => from_json(payload).map(InvoiceEvent::Paid),
            "InvoicePaymentFailed" => from_json(payload).map(InvoiceEvent::PaymentFailed),
            "InvoiceVoided" => from_json(payload).map(InvoiceEvent::Voided),
            "InvoiceMarkedUncollectible" => {
                from_json(payload).map(InvoiceEvent::MarkedUncollectible)
            }
            "CreditNoteIssued" => from_json(payload).map(InvoiceEvent::CreditNoteIssued),
            "InvoiceSent" => from_json(payload).map(InvoiceEvent::Sent),
            _ => None,
        }
    }
}
