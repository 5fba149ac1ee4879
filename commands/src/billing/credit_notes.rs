//! Credit notes: less due on an open invoice, or a refund of a paid one.
//!
//! A refunding note and its refund's reservation (`RefundRequested` on the charge, capped by what
//! the charge can still refund) are recorded in one transaction (`EventStore::append_atomic`),
//! each at the version it was decided on: a concurrent `/v1/refunds` of the same charge, or
//! another note, makes the pair be decided again, never half-recorded. The gateway is asked
//! after; a crash before its answer leaves a pending refund that charge recovery completes.

use ledger::event::Metadata;
use ledger::ids::{CreditNoteId, InvoiceId, RefundId};
use ledger::money::Money;
use ledger::store::AppendError;

use super::Billing;
use crate::aggregate::{Executed, refusal};
use crate::charge::refund::RefundError;
use crate::charge::{ChargeError, IdempotencyDraft, RefundInput, Rendered, unrendered};
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
        let command = InvoiceCommand::IssueCreditNote {
            credit_note_id,
            amount: Money::new(amount, invoice.currency),
            reason,
        };
        let done = self
            .issue_with_refund(id, credit_note_id, command, metadata, draft, render)
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
        // The refund is reserved on its charge already (or, for a note recorded before notes
        // and refunds were recorded together, requested now): ask the gateway.
        if let Some(refund) = refund_of(&done.state, credit_note_id) {
            self.charges
                .refund(refund, metadata.clone(), None, &|c, _| unrendered(c))
                .await?;
        }
        Ok(done)
    }

    /// Decides the note on the invoice and, when it refunds, its refund on the charge, and
    /// records both in one transaction; decided again after a concurrent append to either.
    async fn issue_with_refund(
        &self,
        id: InvoiceId,
        credit_note_id: CreditNoteId,
        command: InvoiceCommand,
        metadata: &Metadata,
        draft: Option<&IdempotencyDraft>,
        render: &(dyn Fn(&Invoice) -> Rendered + Send + Sync),
    ) -> Result<Executed<Invoice>, CommandError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let decision = self
                .executor
                .decide::<Invoice>(&id, command.clone(), metadata, draft, render)
                .await?;
            let Some(request) = decision.request else {
                return Ok(Executed {
                    state: decision.state,
                    position: decision.position,
                    idempotency_stored: false,
                });
            };
            let idempotency_stored = request.idempotency.is_some();
            let mut requests = vec![request];
            let refund = refund_of(&decision.state, credit_note_id);
            if let Some(refund) = &refund {
                let reservation = self
                    .charges
                    .refund_request(refund, metadata)
                    .await
                    .map_err(as_note_refusal)?;
                requests.extend(reservation);
            }
            let retries = match refund {
                Some(_) => REFUNDING_NOTE_RETRY_MAX,
                None => NOTE_RETRY_MAX,
            };
            match self.executor.store().append_atomic(requests).await {
                // The invoice's position: what an idempotent replay of this request answers.
                Ok(committed) => {
                    let position = committed
                        .first()
                        .map_or(decision.position, |c| c.last_position);
                    return Ok(Executed {
                        state: decision.state,
                        position,
                        idempotency_stored,
                    });
                }
                Err(AppendError::WrongExpectedVersion { .. }) if attempt < retries => {}
                Err(e) => return Err(refusal(e)),
            }
        }
    }
}

/// Decides a note again after a concurrent append to its invoice at most this many times.
const NOTE_RETRY_MAX: usize = 3;
/// Every refund of a charge appends to its stream: many at once contend, each round one wins.
const REFUNDING_NOTE_RETRY_MAX: usize = 64;

/// The charge's refusal of a note's refund, as the note's own: the note may credit at most what
/// the charge can still give back (nothing, when it was refunded in full by `/v1/refunds`).
fn as_note_refusal(e: CommandError) -> CommandError {
    match e {
        CommandError::Refund(RefundError::AmountTooLarge { refundable }) => {
            InvoiceError::CreditNoteTooLarge { max: refundable }.into()
        }
        CommandError::Refund(
            RefundError::AlreadyRefunded(_) | RefundError::ChargeNotRefundable,
        )
        | CommandError::Charge(ChargeError::NotRequested) => {
            InvoiceError::CreditNoteTooLarge { max: 0 }.into()
        }
        e => e,
    }
}

/// The refund a credit note of `invoice` gives, if it is one that refunds.
fn refund_of(invoice: &Invoice, credit_note_id: CreditNoteId) -> Option<RefundInput> {
    let note = invoice
        .credit_notes
        .iter()
        .find(|n| n.id == credit_note_id)?;
    let charge_id = invoice.paid_by?;
    note.refund.then(|| RefundInput {
        charge_id,
        refund_id: RefundId::derived(&credit_note_id.to_string()),
        amount: Some(note.amount.amount_minor()),
        reason: Some("requested_by_customer".into()),
    })
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
