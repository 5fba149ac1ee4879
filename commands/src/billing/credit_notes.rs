//! Credit notes: less due on an open invoice, or a refund of a paid one.
//!
//! Known gap: a refunding note is checked against what its charge can still refund, issued on
//! the invoice, then refunded; a `/v1/refunds` of the same charge landing in between can leave
//! the note issued and its refund refused (answered as an error; a retry refuses again).
//! Reserving the refund first was tried and dropped: a crash or a refused note then leaves a
//! reservation that recovery would send without its note.

use ledger::event::Metadata;
use ledger::ids::{CreditNoteId, InvoiceId, RefundId};
use ledger::money::Money;

use super::Billing;
use crate::aggregate::Executed;
use crate::charge::{IdempotencyDraft, RefundInput, Rendered, unrendered};
use crate::customer::{Customer, CustomerCommand};
use crate::error::CommandError;
use crate::invoice::{CreditNoteReason, Invoice, InvoiceCommand, InvoiceError, InvoiceStatus};
use crate::subscription::{Subscription, SubscriptionCommand};

/// A credit note to issue.
#[derive(Debug, Clone)]
pub struct CreditNoteRequest {
    pub invoice_id: InvoiceId,
    pub credit_note_id: CreditNoteId,
    /// Minor units of the invoice's currency.
    pub amount: i64,
    pub reason: CreditNoteReason,
}

impl Billing {
    /// A credit note: reduces what an open invoice asks for, or refunds a paid one (the refund
    /// goes to the charge that paid it). Issuing the same credit note again changes nothing.
    ///
    /// # Errors
    /// Domain refusals (too large, a draft or void invoice), store and gateway failures.
    pub async fn credit_note(
        &self,
        note: CreditNoteRequest,
        metadata: &Metadata,
        draft: Option<&IdempotencyDraft>,
        render: &(dyn Fn(&Invoice) -> Rendered + Send + Sync),
    ) -> Result<Executed<Invoice>, CommandError> {
        let CreditNoteRequest {
            invoice_id: id,
            credit_note_id,
            amount,
            reason,
        } = note;
        let invoice = self.load_invoice(id).await?;
        no_payment_in_flight(&invoice)?;
        // A refund the charge cannot take is refused before anything is recorded.
        let new = !invoice.credit_notes.iter().any(|n| n.id == credit_note_id);
        if let (true, InvoiceStatus::Paid, Some(charge)) = (new, invoice.status, invoice.paid_by) {
            let refundable = self
                .charges
                .get(charge)
                .await?
                .map_or(0, |c| c.refundable());
            if amount > refundable {
                return Err(InvoiceError::CreditNoteTooLarge { max: refundable }.into());
            }
        }
        let command = InvoiceCommand::IssueCreditNote {
            credit_note_id,
            amount: Money::new(amount, invoice.currency),
            reason,
        };
        let done = self
            .executor
            .execute::<Invoice>(&id, command, metadata, draft, render)
            .await?;
        // Credited in full by this note: the invoice went from owed to paid, and its
        // subscription is no longer past due.
        let settled_now =
            invoice.status != InvoiceStatus::Paid && done.state.status == InvoiceStatus::Paid;
        if let (true, Some(sub)) = (settled_now, done.state.subscription_id) {
            let recovered = SubscriptionCommand::PaymentSucceeded { invoice_id: id };
            self.executor
                .execute::<Subscription>(&sub, recovered, metadata, None, &unrendered)
                .await?;
        }
        let issued = done
            .state
            .credit_notes
            .iter()
            .find(|n| n.id == credit_note_id);
        if let (Some(note), Some(charge_id)) = (issued, done.state.paid_by)
            && note.refund
        {
            let refund = RefundInput {
                charge_id,
                refund_id: RefundId::derived(&credit_note_id.to_string()),
                amount: Some(note.amount.amount_minor()),
                reason: Some("requested_by_customer".into()),
            };
            self.charges
                .refund(refund, metadata.clone(), None, &|c, _| unrendered(c))
                .await?;
        }
        Ok(done)
    }
}

impl Billing {
    /// Voids the invoice and gives back the customer credit it used (once).
    ///
    /// # Errors
    /// Domain refusals (a paid invoice), store failures.
    pub async fn void_invoice(
        &self,
        id: InvoiceId,
        metadata: &Metadata,
        draft: Option<&IdempotencyDraft>,
        render: &(dyn Fn(&Invoice) -> Rendered + Send + Sync),
    ) -> Result<Executed<Invoice>, CommandError> {
        no_payment_in_flight(&self.load_invoice(id).await?)?;
        let done = self
            .executor
            .execute::<Invoice>(&id, InvoiceCommand::Void, metadata, draft, render)
            .await?;
        // The credit it used goes back to the balance, or the debt it collected is owed again.
        let used = done.state.credit_applied;
        let back = done
            .state
            .owed()
            .checked_sub(used)
            .map_err(InvoiceError::from)?;
        if !back.is_zero() {
            let back = CustomerCommand::AdjustBalance {
                amount: back,
                reason: format!("balance given back by voided invoice {id}"),
                source: Some(format!("{id}:void")),
            };
            self.executor
                .execute::<Customer>(&done.state.customer_id, back, metadata, None, &unrendered)
                .await?;
        }
        Ok(done)
    }
}

/// A payment whose outcome is not recorded yet may have taken money: what is owed must not
/// change under it (a credit note, a void) until `/pay` or the scheduler records its outcome.
pub(super) fn no_payment_in_flight(invoice: &Invoice) -> Result<(), CommandError> {
    match invoice.unresolved_attempt() {
        None => Ok(()),
        Some(attempt) => Err(CommandError::Precondition(format!(
            "payment attempt {attempt} of invoice {} has no outcome yet; retry after `/pay`",
            invoice.id
        ))),
    }
}
