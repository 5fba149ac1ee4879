//! Credit notes (Stripe semantics): on an open or uncollectible invoice a credit note lowers
//! what is left to pay (never below zero; crediting all of it settles the invoice); on a paid
//! invoice it is a refund (never more than was paid less the earlier refunds). Not on a draft
//! or a void invoice. Issuing the same credit note twice records it once.

use ledger::ids::CreditNoteId;
use ledger::money::Money;

use super::events::{CreditNoteIssued, CreditNoteReason, InvoiceEvent, InvoicePaid};
use super::{Invoice, InvoiceError, InvoiceStatus};

/// The largest credit note `inv` takes now, and whether it would be a refund; an error for a
/// draft or void invoice.
///
/// # Errors
/// [`InvoiceError::NotFinalized`] or [`InvoiceError::Voided`].
pub fn credit_note_max(inv: &Invoice) -> Result<(Money, bool), InvoiceError> {
    // A credit note credits this invoice's own sale, not the earlier debt it collects.
    let own = |m: Money| {
        Money::new(
            m.amount_minor()
                .saturating_sub(inv.owed().amount_minor())
                .max(0),
            inv.currency,
        )
    };
    match inv.status {
        InvoiceStatus::Draft => Err(InvoiceError::NotFinalized),
        InvoiceStatus::Void => Err(InvoiceError::Voided),
        InvoiceStatus::Paid => Ok((own(inv.refundable()), true)),
        InvoiceStatus::Open | InvoiceStatus::Uncollectible => {
            Ok((own(inv.amount_remaining), false))
        }
    }
}

pub(super) fn issue(
    inv: &Invoice,
    credit_note_id: CreditNoteId,
    amount: Money,
    reason: CreditNoteReason,
) -> Result<Vec<InvoiceEvent>, InvoiceError> {
    if inv.credit_notes.iter().any(|c| c.id == credit_note_id) {
        return Ok(vec![]);
    }
    let (max, refund) = credit_note_max(inv)?;
    if amount.currency() != inv.currency {
        return Err(InvoiceError::CurrencyMismatch {
            expected: inv.currency,
            found: amount.currency(),
        });
    }
    if amount.amount_minor() <= 0 {
        return Err(InvoiceError::CreditNoteAmountInvalid);
    }
    if amount.amount_minor() > max.amount_minor() {
        return Err(InvoiceError::CreditNoteTooLarge {
            max: max.amount_minor(),
        });
    }
    // What is left to pay, the debt it collects included.
    let amount_remaining = if refund {
        0
    } else {
        inv.amount_remaining.checked_sub(amount)?.amount_minor()
    };
    let mut events = vec![InvoiceEvent::CreditNoteIssued(CreditNoteIssued {
        invoice_id: inv.id,
        credit_note_id,
        amount: amount.amount_minor(),
        reason,
        refund,
        amount_remaining,
    })];
    if !refund && amount_remaining == 0 {
        events.push(InvoiceEvent::Paid(InvoicePaid {
            invoice_id: inv.id,
            charge_id: None,
            amount_paid: 0,
        }));
    }
    Ok(events)
}
