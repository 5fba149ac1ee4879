//! Invoice lines, their taxes and the invoice totals: the pure function [`draft`] that turns a
//! draft's inputs into an [`InvoiceDrafted`] event carrying every computed amount.
//!
//! Totals follow Stripe: `subtotal` is the sum of the line amounts (an inclusive tax is inside
//! them), `tax` the sum of all line taxes, `total = subtotal + exclusive taxes`. Customer credit
//! is applied up to a positive total; what the customer owes (a positive balance) is added to
//! it; a negative total (a proration credit larger than the charges) leaves nothing due and its
//! magnitude goes to the customer's balance.

use chrono::{DateTime, Utc};
use ledger::ids::{CustomerId, InvoiceId, SubscriptionId, TaxRateId};
use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use super::InvoiceError;
use super::events::{BillingReason, InvoiceDrafted};
use crate::pricing::TaxRate;

/// Most lines on one invoice.
pub const LINES_MAX: usize = 100;
/// Largest quantity of one line (metered usage can be large; amounts are checked for overflow).
pub const QUANTITY_MAX: i64 = 1_000_000_000_000;
/// Longest line description, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 500;
/// Most tax rates applied to one line (Stripe's limit).
pub const TAX_RATES_MAX: usize = 5;

/// A start and an (exclusive) end instant, `start < end`.
pub type Period = (DateTime<Utc>, DateTime<Utc>);

/// One tax on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineTax {
    pub tax_rate_id: TaxRateId,
    /// `{"percentage": "8.25", "inclusive": false}`.
    #[serde(flatten)]
    pub rate: TaxRate,
    /// The tax, in minor units of the invoice currency.
    pub amount: i64,
}

/// One line of an invoice; amounts in minor units of the invoice currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub description: String,
    /// At least 1; exactly 1 on a proration line.
    pub quantity: i64,
    /// Price of one unit; negative only on a proration credit.
    pub unit_amount: i64,
    /// `unit_amount × quantity` (contains the inclusive taxes, excludes the exclusive ones).
    pub amount: i64,
    pub proration: bool,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tax: Vec<LineTax>,
}

/// The computed amounts of an invoice, in minor units; stored in [`InvoiceDrafted`] so that a
/// reader never recomputes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of the line amounts.
    pub subtotal: i64,
    /// Sum of every line tax, inclusive and exclusive.
    pub tax: i64,
    /// `subtotal` + the exclusive taxes.
    pub total: i64,
    /// Customer credit used on this invoice: `0 ≤ credit_applied ≤ max(total, 0)`.
    pub credit_applied: i64,
    /// What is left to pay: `max(total − credit_applied, 0) + owed_applied`.
    pub amount_due: i64,
    /// A negative total, as a positive amount credited to the customer's balance.
    pub credit_to_balance: i64,
    /// What the customer owed (a positive balance), collected with this invoice (≥ 0).
    #[serde(default)]
    pub owed_applied: i64,
}

/// One item to bill, as given by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemInput {
    pub description: String,
    /// Must be in the invoice currency.
    pub unit_amount: Money,
    pub quantity: i64,
    pub proration: bool,
    pub period: Option<Period>,
}

/// Everything a draft invoice is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftInput {
    pub invoice_id: InvoiceId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    /// Required for the `subscription_*` billing reasons.
    pub subscription_id: Option<SubscriptionId>,
    /// The subscription period the invoice bills.
    pub period: Option<Period>,
    pub billing_reason: BillingReason,
    pub items: Vec<ItemInput>,
    /// Applied to every line (empty for a tax-exempt customer); at most one inclusive rate.
    pub tax_rates: Vec<(TaxRateId, TaxRate)>,
    /// Customer credit available (≥ 0); only as much as the total is used.
    pub credit_applied: Money,
    /// What the customer owes (≥ 0), added to what is due.
    pub owed_applied: Money,
}

/// Builds a draft invoice: checks the inputs, computes every line, tax and total with checked
/// arithmetic (an overflow is [`InvoiceError::Overflow`], never a wrap-around).
///
/// Taxes on a line: an inclusive rate finds its tax inside the line amount; exclusive rates are
/// charged on the line amount net of that inclusive tax. Each tax is rounded once, half to even.
///
/// # Errors
/// [`InvoiceError::LineCount`], [`InvoiceError::InvalidLine`], [`InvoiceError::CurrencyMismatch`],
/// [`InvoiceError::TaxRatesInvalid`], [`InvoiceError::InvalidPeriod`],
/// [`InvoiceError::SubscriptionRequired`], [`InvoiceError::CreditAppliedInvalid`],
/// [`InvoiceError::Overflow`].
pub fn draft(input: DraftInput) -> Result<InvoiceDrafted, InvoiceError> {
    let currency = input.currency;
    if !(1..=LINES_MAX).contains(&input.items.len()) {
        return Err(InvoiceError::LineCount(input.items.len()));
    }
    if input.billing_reason != BillingReason::Manual && input.subscription_id.is_none() {
        return Err(InvoiceError::SubscriptionRequired);
    }
    if input.period.is_some_and(|(start, end)| start >= end) {
        return Err(InvoiceError::InvalidPeriod);
    }
    check_tax_rates(&input.tax_rates)?;
    same_currency(currency, input.credit_applied)?;
    same_currency(currency, input.owed_applied)?;
    if input.credit_applied.is_negative() || input.owed_applied.is_negative() {
        return Err(InvoiceError::CreditAppliedInvalid);
    }
    let lines = input
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| line(index, item, currency, &input.tax_rates))
        .collect::<Result<Vec<_>, _>>()?;
    let mut totals = totals(&lines, input.credit_applied.amount_minor())?;
    totals.owed_applied = input.owed_applied.amount_minor();
    totals.amount_due = add(totals.amount_due, totals.owed_applied)?;
    Ok(InvoiceDrafted {
        invoice_id: input.invoice_id,
        customer_id: input.customer_id,
        currency,
        subscription_id: input.subscription_id,
        period_start: input.period.map(|p| p.0),
        period_end: input.period.map(|p| p.1),
        billing_reason: input.billing_reason,
        lines,
        totals,
    })
}

/// The totals of `lines`, using at most `credit_available` (≥ 0) of customer credit.
///
/// # Errors
/// [`InvoiceError::Overflow`] if a sum does not fit in an `i64`.
pub fn totals(lines: &[InvoiceLine], credit_available: i64) -> Result<Totals, InvoiceError> {
    let (mut subtotal, mut tax, mut exclusive) = (0_i64, 0_i64, 0_i64);
    for line in lines {
        subtotal = add(subtotal, line.amount)?;
        for t in &line.tax {
            tax = add(tax, t.amount)?;
            if !t.rate.is_inclusive() {
                exclusive = add(exclusive, t.amount)?;
            }
        }
    }
    let total = add(subtotal, exclusive)?;
    let credit_applied = credit_available.clamp(0, total.max(0));
    Ok(Totals {
        subtotal,
        tax,
        total,
        credit_applied,
        amount_due: total.max(0) - credit_applied,
        credit_to_balance: total.min(0).checked_neg().ok_or(InvoiceError::Overflow)?,
        owed_applied: 0,
    })
}

fn add(a: i64, b: i64) -> Result<i64, InvoiceError> {
    a.checked_add(b).ok_or(InvoiceError::Overflow)
}

fn same_currency(expected: Currency, m: Money) -> Result<(), InvoiceError> {
    if m.currency() == expected {
        Ok(())
    } else {
        Err(InvoiceError::CurrencyMismatch {
            expected,
            found: m.currency(),
        })
    }
}

fn check_tax_rates(rates: &[(TaxRateId, TaxRate)]) -> Result<(), InvoiceError> {
    let invalid = |reason: &str| Err(InvoiceError::TaxRatesInvalid(reason.to_owned()));
    if rates.len() > TAX_RATES_MAX {
        return invalid("at most 5 tax rates per line");
    }
    if rates.iter().filter(|(_, r)| r.is_inclusive()).count() > 1 {
        return invalid("at most one inclusive tax rate per line");
    }
    for (i, (id, _)) in rates.iter().enumerate() {
        if rates[..i].iter().any(|(other, _)| other == id) {
            return invalid("a tax rate is given twice");
        }
    }
    Ok(())
}

fn line(
    index: usize,
    item: ItemInput,
    currency: Currency,
    rates: &[(TaxRateId, TaxRate)],
) -> Result<InvoiceLine, InvoiceError> {
    let invalid = |reason: &str| {
        Err(InvoiceError::InvalidLine {
            index,
            reason: reason.to_owned(),
        })
    };
    let description_ok = !item.description.trim().is_empty()
        && item.description.chars().count() <= DESCRIPTION_MAX_CHARS
        && !item.description.contains('\0');
    if !description_ok {
        return invalid("description must be 1 to 500 characters, without NUL");
    }
    if !(1..=QUANTITY_MAX).contains(&item.quantity) {
        return invalid("quantity must be from 1 to 1000000000000");
    }
    if item.proration && item.quantity != 1 {
        return invalid("a proration line has quantity 1");
    }
    same_currency(currency, item.unit_amount)?;
    if item.unit_amount.is_negative() && !item.proration {
        return invalid("unit_amount may be negative only on a proration line");
    }
    if item.period.is_some_and(|(start, end)| start >= end) {
        return invalid("period end must be after its start");
    }
    let amount = item.unit_amount.checked_mul(item.quantity)?;
    Ok(InvoiceLine {
        description: item.description,
        quantity: item.quantity,
        unit_amount: item.unit_amount.amount_minor(),
        amount: amount.amount_minor(),
        proration: item.proration,
        period_start: item.period.map(|p| p.0),
        period_end: item.period.map(|p| p.1),
        tax: line_taxes(amount, rates)?,
    })
}

/// The inclusive tax (if any) is found inside `amount`; exclusive taxes apply to what remains.
fn line_taxes(amount: Money, rates: &[(TaxRateId, TaxRate)]) -> Result<Vec<LineTax>, InvoiceError> {
    let mut net = amount;
    for (_, rate) in rates.iter().filter(|(_, r)| r.is_inclusive()) {
        net = rate.tax_on(amount)?.net;
    }
    rates
        .iter()
        .map(|(id, rate)| {
            let split = rate.tax_on(if rate.is_inclusive() { amount } else { net })?;
            Ok(LineTax {
                tax_rate_id: *id,
                rate: *rate,
                amount: split.tax.amount_minor(),
            })
        })
        .collect()
}
