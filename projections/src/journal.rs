//! The double-entry journal: every money event posted as one entry of balanced lines.
//!
//! Amounts are signed while an entry is built (debit positive, credit negative) and every entry
//! sums to zero in its one currency, so the trial balance is zero per currency at any moment.
//!
//! Accounts (each line also carries its currency):
//!
//! | account | what it holds |
//! |---|---|
//! | `receivable:<customer>` | invoiced and not yet paid, credited or voided |
//! | `cash:<gateway>` | money taken by a gateway, less refunds |
//! | `revenue` | invoiced amounts without tax; one-off charges |
//! | `tax_payable:<country>[-<state>]` | tax invoiced, per jurisdiction of the tax rate |
//! | `refunds` | money given back (contra revenue) |
//! | `credit_notes` | amounts credited on open invoices (contra revenue) |
//! | `invoice_voids` | what voided invoices no longer ask (contra revenue) |
//! | `customer_balance:<customer>` | Stripe's customer balance: debit = owed, credit = credit held |
//! | `balance_adjustments` | the other side of manual balance adjustments |
//! | `disputes` | money withdrawn by chargebacks (lost, or still open) |
//!
//! Postings:
//!
//! - `InvoiceFinalized`: receivable +total; revenue −(total − tax); tax payable −tax per rate.
//! - `ChargeSucceeded`: cash +amount; receivable −amount when an invoice attempt made the charge
//!   (`InvoicePaymentAttempted` is recorded before its charge), else revenue −amount.
//! - `RefundSucceeded`: cash −amount; refunds +amount less its tax share; for the payment of a
//!   taxed invoice, tax payable +that share (amount × the invoice's open tax / what the charge
//!   paid, half-even, per jurisdiction).
//! - `CreditNoteIssued` before payment: receivable −amount; credit notes +amount less its tax
//!   share (amount × tax / total); tax payable +that share. After payment it posts nothing
//!   itself: the refund it causes does.
//! - `InvoiceVoided` (of a finalized invoice): receivable −(total − credit notes); the tax still
//!   open reversed; invoice voids +the rest.
//! - `ChargeDisputed` that withdrew funds, or `DisputeFundsWithdrawn` (an inquiry escalated):
//!   cash −amount; disputes +amount. `DisputeClosed` won (funds reinstated): the reverse. A lost
//!   dispute stays in `disputes`; an inquiry posts nothing.
//! - `ChargeFailedOver`: nothing; the charge's cash account becomes the new gateway's.
//! - `BalanceAdjusted`: customer balance +amount; the other side is the receivable when an
//!   invoice caused it (credit applied, credit from a negative invoice, a debt collected by an
//!   invoice, credit or debt given back by a void), else balance adjustments. A refund of a
//!   charge that also collected a debt gives tax back in proportion to the invoice's total
//!   (as every refund of an invoice payment does), whichever part it is meant to return.
//!
//! To post, the journal remembers what later events do not repeat (a charge's amount and
//! gateway, an invoice's totals, a tax rate's jurisdiction) in its own documents.

use std::collections::BTreeMap;

use commands::charge::ChargeEvent;
use commands::charge::dispute::DisputeEvent;
use commands::charge::refund::RefundEvent;
use commands::customer::CustomerEvent;
use commands::invoice::InvoiceEvent;
use commands::stored::DomainEvent;
use commands::tax_rate::TaxRateEvent;
use ledger::event::RecordedEvent;
use serde::{Deserialize, Serialize};

use crate::projection::{JournalLine, Projection, ProjectionError, ReadSet, Table, timestamp};

const NAME: &str = "journal";

/// The journal projection.
pub struct Journal;

#[derive(Debug, Default, Serialize, Deserialize)]
struct ChargeNote {
    invoice: Option<String>,
    customer: Option<String>,
    amount: i64,
    currency: String,
    gateway: String,
    /// Refunds requested, by id.
    refunds: BTreeMap<String, i64>,
    /// For a charge that pays an invoice: what it pays, and the invoice's tax still payable
    /// then, per jurisdiction — a refund gives back that share of tax.
    #[serde(default)]
    paid_for: i64,
    #[serde(default)]
    tax_in_payment: BTreeMap<String, i64>,
    /// Tax already given back by refunds, per jurisdiction.
    #[serde(default)]
    tax_refunded: BTreeMap<String, i64>,
    /// Refunded so far (succeeded refunds).
    #[serde(default)]
    refunded: i64,
    /// Funds withdrawn by open disputes, by dispute id.
    #[serde(default)]
    disputes: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct InvoiceNote {
    customer: String,
    currency: String,
    total: i64,
    /// Tax per jurisdiction, as invoiced.
    tax: BTreeMap<String, i64>,
    /// Tax per jurisdiction still payable (less the tax share of credit notes).
    #[serde(default)]
    tax_open: Option<BTreeMap<String, i64>>,
    /// Credit notes issued before payment.
    credit_notes: i64,
    finalized: bool,
}

impl InvoiceNote {
    fn open_tax(&self) -> BTreeMap<String, i64> {
        self.tax_open.clone().unwrap_or_else(|| self.tax.clone())
    }
}

/// `x × t / base` rounded half-even (the one rounding rule), exact for any `i64`s: the product
/// is taken in `i128`; a result beyond `i64` saturates (it is capped by what is left anyway).
fn share_of(x: i64, t: i64, base: i64) -> i64 {
    let num = i128::from(x) * i128::from(t);
    let den = i128::from(base.max(1));
    let (q, r) = (num / den, num % den);
    let Ok(q) = i64::try_from(q) else {
        return if num > 0 { i64::MAX } else { i64::MIN };
    };
    let fraction = rust_decimal::Decimal::from(i64::try_from(r).unwrap_or(0))
        / rust_decimal::Decimal::from(base.max(1));
    rust_decimal::Decimal::from(q)
        .checked_add(fraction)
        .and_then(|exact| commands::pricing::round_minor(exact).ok())
        .unwrap_or(q)
}

/// The tax share of `amount` when `before` was already given back out of `base`, per
/// jurisdiction: allocated on the running total — `round((before + amount) × tax / base) −
/// round(before × tax / base)` — so that the shares of several notes or refunds add up to the
/// whole tax when they add up to the whole base; never more than what is `left`.
fn tax_share(
    before: i64,
    amount: i64,
    base: i64,
    tax: &BTreeMap<String, i64>,
    left: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    if base <= 0 {
        return BTreeMap::new();
    }
    let after = before.saturating_add(amount);
    tax.iter()
        .map(|(j, t)| {
            let share = share_of(after, *t, base).saturating_sub(share_of(before, *t, base));
            let cap = left.get(j).copied().unwrap_or(0).max(0);
            (j.clone(), share.clamp(0, cap))
        })
        .filter(|(_, s)| *s != 0)
        .collect()
}

fn total_of(m: &BTreeMap<String, i64>) -> i64 {
    m.values().fold(0i64, |a, v| a.saturating_add(*v))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TaxRateNote {
    jurisdiction: String,
}

/// The events the journal reads, decoded.
enum Money {
    Charge(ChargeEvent),
    Invoice(InvoiceEvent),
    Customer(CustomerEvent),
    TaxRate(TaxRateEvent),
}

fn decode(event: &RecordedEvent) -> Option<Money> {
    let (t, p) = (event.event_type.as_str(), &event.payload);
    match event.stream_id.category() {
        "charge" => ChargeEvent::from_stored(t, p).map(Money::Charge),
        "invoice" => InvoiceEvent::from_stored(t, p).map(Money::Invoice),
        "customer" => CustomerEvent::from_stored(t, p).map(Money::Customer),
        "taxrate" => TaxRateEvent::from_stored(t, p).map(Money::TaxRate),
        _ => None,
    }
}

fn charge_key(id: impl std::fmt::Display) -> String {
    format!("charge:{id}")
}

fn invoice_key(id: impl std::fmt::Display) -> String {
    format!("invoice:{id}")
}

fn tax_rate_key(id: impl std::fmt::Display) -> String {
    format!("taxrate:{id}")
}

/// One entry being built.
struct Entry<'e> {
    event: &'e RecordedEvent,
    currency: String,
    lines: Vec<(String, i64)>,
    customer: Option<String>,
    overflow: bool,
}

impl<'e> Entry<'e> {
    fn new(event: &'e RecordedEvent, currency: &str) -> Self {
        Self {
            event,
            currency: currency.to_string(),
            lines: Vec::new(),
            customer: None,
            overflow: false,
        }
    }

    /// The customer the entry concerns.
    fn of(mut self, customer: Option<&str>) -> Self {
        self.customer = customer.filter(|c| !c.is_empty()).map(str::to_string);
        self
    }

    /// Debits `amount` to `account` (a negative amount credits); zero posts nothing.
    fn debit(mut self, account: impl Into<String>, amount: i64) -> Self {
        if amount != 0 {
            self.lines.push((account.into(), amount));
        }
        self
    }

    /// Credits `amount` to `account` (a negative amount debits).
    fn credit(mut self, account: impl Into<String>, amount: i64) -> Self {
        match amount.checked_neg() {
            Some(debit) => self.debit(account, debit),
            None => {
                self.overflow = true;
                self
            }
        }
    }

    fn post(self, set: &mut ReadSet) -> Result<(), ProjectionError> {
        let balance = self
            .lines
            .iter()
            .try_fold(0i64, |sum, (_, a)| sum.checked_add(*a));
        if self.overflow || balance != Some(0) {
            return Err(unreadable(self.event, "entry does not balance".into()));
        }
        let at = timestamp(self.event.occurred_at);
        for (i, (account, amount)) in self.lines.into_iter().enumerate() {
            set.post(JournalLine {
                position: self.event.position.0,
                line: i32::try_from(i + 1).unwrap_or(i32::MAX),
                at: at.clone(),
                entry: self.event.event_type.clone(),
                account,
                currency: self.currency.clone(),
                debit: amount.max(0),
                credit: amount.checked_neg().unwrap_or(i64::MAX).max(0),
                customer: self.customer.clone(),
            });
        }
        Ok(())
    }
}

fn unreadable(event: &RecordedEvent, reason: String) -> ProjectionError {
    ProjectionError::unreadable(NAME, event, reason)
}

fn sum(a: i64, b: i64, event: &RecordedEvent) -> Result<i64, ProjectionError> {
    a.checked_add(b)
        .ok_or_else(|| unreadable(event, "amount overflow".into()))
}

impl Projection for Journal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn table(&self) -> Table {
        Table::Journal
    }

    /// Read from the payload's ids, without decoding the whole event (`apply` decodes it).
    fn reads(&self, event: &RecordedEvent) -> Vec<String> {
        let p = &event.payload;
        let id = |field: &str| p.get(field).and_then(|v| v.as_str());
        match event.stream_id.category() {
            "charge" => id("charge_id").map(charge_key).into_iter().collect(),
            "invoice" => {
                let mut keys: Vec<String> = id("invoice_id").map(invoice_key).into_iter().collect();
                keys.extend(id("charge_id").map(charge_key));
                if let Some(lines) = p.get("lines").and_then(|l| l.as_array()) {
                    let rates = lines
                        .iter()
                        .filter_map(|l| l.get("tax").and_then(|t| t.as_array()))
                        .flatten()
                        .filter_map(|t| t.get("tax_rate_id").and_then(|r| r.as_str()));
                    keys.extend(rates.map(tax_rate_key));
                }
                keys
            }
            "taxrate" => id("tax_rate_id").map(tax_rate_key).into_iter().collect(),
            _ => Vec::new(),
        }
    }

    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError> {
        match decode(event) {
            Some(Money::Charge(e)) => charge(set, event, e),
            Some(Money::Invoice(e)) => invoice(set, event, e),
            Some(Money::Customer(CustomerEvent::BalanceAdjusted(b))) => {
                let customer = b.customer_id.to_string();
                let other = match b.source {
                    Some(_) => format!("receivable:{customer}"),
                    None => "balance_adjustments".to_string(),
                };
                Entry::new(event, b.currency.code())
                    .of(Some(&customer))
                    .debit(format!("customer_balance:{customer}"), b.amount)
                    .credit(other, b.amount)
                    .post(set)
            }
            Some(Money::TaxRate(TaxRateEvent::Created(t))) => {
                let jurisdiction = match &t.state {
                    Some(s) => format!("{}-{s}", t.country),
                    None => t.country.clone(),
                };
                set.keep(
                    NAME,
                    event,
                    tax_rate_key(t.tax_rate_id),
                    None,
                    &TaxRateNote { jurisdiction },
                )
            }
            Some(Money::Customer(_)) | None => Ok(()),
        }
    }
}

fn charge(set: &mut ReadSet, event: &RecordedEvent, e: ChargeEvent) -> Result<(), ProjectionError> {
    match e {
        ChargeEvent::Requested(r) => {
            let key = charge_key(r.charge_id);
            let mut n: ChargeNote = set.note(NAME, event, &key)?;
            n.customer = r.customer_id.map(|c| c.to_string());
            n.amount = r.amount;
            n.currency = r.currency.code().to_string();
            n.gateway = r.gateway;
            let customer = n.customer.clone();
            set.keep(NAME, event, key, customer, &n)
        }
        ChargeEvent::Succeeded(s) => {
            let n: ChargeNote = set.note(NAME, event, &charge_key(s.charge_id))?;
            let other = match (&n.invoice, &n.customer) {
                (Some(_), Some(c)) => format!("receivable:{c}"),
                _ => "revenue".to_string(),
            };
            Entry::new(event, &n.currency)
                .of(n.customer.as_deref())
                .debit(format!("cash:{}", n.gateway), n.amount)
                .credit(other, n.amount)
                .post(set)
        }
        ChargeEvent::Refund(RefundEvent::Requested(r)) => {
            let key = charge_key(r.charge_id);
            let mut n: ChargeNote = set.note(NAME, event, &key)?;
            n.refunds.insert(r.refund_id.to_string(), r.amount);
            let customer = n.customer.clone();
            set.keep(NAME, event, key, customer, &n)
        }
        ChargeEvent::Refund(RefundEvent::Succeeded(r)) => {
            let key = charge_key(r.charge_id);
            let mut n: ChargeNote = set.note(NAME, event, &key)?;
            let amount = n
                .refunds
                .get(&r.refund_id.to_string())
                .copied()
                .unwrap_or(0);
            // A refund of an invoice's payment gives back its share of the invoice's tax.
            let left: BTreeMap<String, i64> = n
                .tax_in_payment
                .iter()
                .map(|(j, t)| {
                    let refunded = n.tax_refunded.get(j).copied().unwrap_or(0);
                    (j.clone(), t.saturating_sub(refunded))
                })
                .collect();
            let tax = tax_share(n.refunded, amount, n.paid_for, &n.tax_in_payment, &left);
            n.refunded = n.refunded.saturating_add(amount);
            let mut entry = Entry::new(event, &n.currency)
                .of(n.customer.as_deref())
                .debit("refunds", amount.saturating_sub(total_of(&tax)))
                .credit(format!("cash:{}", n.gateway), amount);
            for (j, t) in &tax {
                entry = entry.debit(format!("tax_payable:{j}"), *t);
                let slot = n.tax_refunded.entry(j.clone()).or_insert(0);
                *slot = slot.saturating_add(*t);
            }
            entry.post(set)?;
            if n.tax_in_payment.is_empty() {
                // No tax to give back, ever: nothing to remember.
                return Ok(());
            }
            let customer = n.customer.clone();
            set.keep(NAME, event, key, customer, &n)
        }
        ChargeEvent::Dispute(DisputeEvent::Opened(d)) => {
            if !d.funds_withdrawn {
                return Ok(());
            }
            withdraw(set, event, d.charge_id, d.dispute_id, d.amount)
        }
        ChargeEvent::Dispute(DisputeEvent::FundsWithdrawn(w)) => {
            withdraw(set, event, w.charge_id, w.dispute_id, w.amount)
        }
        ChargeEvent::Dispute(DisputeEvent::Closed(d)) => {
            let key = charge_key(d.charge_id);
            let mut n: ChargeNote = set.note(NAME, event, &key)?;
            let Some(amount) = n.disputes.remove(&d.dispute_id) else {
                return Ok(());
            };
            if d.funds_reinstated {
                Entry::new(event, &n.currency)
                    .of(n.customer.as_deref())
                    .debit(format!("cash:{}", n.gateway), amount)
                    .credit("disputes", amount)
                    .post(set)?;
            }
            let customer = n.customer.clone();
            set.keep(NAME, event, key, customer, &n)
        }
        // The money will be taken (and refunded) by the new gateway.
        ChargeEvent::FailedOver(f) => {
            let key = charge_key(f.charge_id);
            let mut n: ChargeNote = set.note(NAME, event, &key)?;
            n.gateway = f.to_gateway;
            let customer = n.customer.clone();
            set.keep(NAME, event, key, customer, &n)
        }
        // A hold moves no money: the capture (`ChargeSucceeded`) does.
        ChargeEvent::Failed(_)
        | ChargeEvent::Processing(_)
        | ChargeEvent::Authorized(_)
        | ChargeEvent::Refund(RefundEvent::Failed(_))
        | ChargeEvent::Review(_) => Ok(()),
    }
}

/// A dispute's amount leaves the charge's cash for `disputes`.
fn withdraw(
    set: &mut ReadSet,
    event: &RecordedEvent,
    charge_id: ledger::ids::ChargeId,
    dispute_id: String,
    amount: i64,
) -> Result<(), ProjectionError> {
    let key = charge_key(charge_id);
    let mut n: ChargeNote = set.note(NAME, event, &key)?;
    Entry::new(event, &n.currency)
        .of(n.customer.as_deref())
        .debit("disputes", amount)
        .credit(format!("cash:{}", n.gateway), amount)
        .post(set)?;
    n.disputes.insert(dispute_id, amount);
    let customer = n.customer.clone();
    set.keep(NAME, event, key, customer, &n)
}

fn invoice(
    set: &mut ReadSet,
    event: &RecordedEvent,
    e: InvoiceEvent,
) -> Result<(), ProjectionError> {
    let key = invoice_key(e.invoice_id());
    let mut n: InvoiceNote = set.note(NAME, event, &key)?;
    let receivable = format!("receivable:{}", n.customer);
    match e {
        InvoiceEvent::Drafted(d) => {
            n.customer = d.customer_id.to_string();
            n.currency = d.currency.code().to_string();
            n.total = d.totals.total;
            for tax in d.lines.iter().flat_map(|l| &l.tax) {
                let rate: TaxRateNote = set.note(NAME, event, &tax_rate_key(tax.tax_rate_id))?;
                let jurisdiction = if rate.jurisdiction.is_empty() {
                    tax.tax_rate_id.to_string()
                } else {
                    rate.jurisdiction
                };
                let slot = n.tax.entry(jurisdiction).or_insert(0);
                *slot = sum(*slot, tax.amount, event)?;
            }
        }
        InvoiceEvent::Finalized(_) => {
            n.finalized = true;
            let tax = n.tax.values().try_fold(0, |a, t| sum(a, *t, event))?;
            let revenue = n
                .total
                .checked_sub(tax)
                .ok_or_else(|| unreadable(event, "amount overflow".into()))?;
            let mut entry = Entry::new(event, &n.currency)
                .of(Some(&n.customer))
                .debit(receivable, n.total)
                .credit("revenue", revenue);
            for (jurisdiction, amount) in &n.tax {
                entry = entry.credit(format!("tax_payable:{jurisdiction}"), *amount);
            }
            entry.post(set)?;
        }
        InvoiceEvent::PaymentAttempted(a) => {
            let ck = charge_key(a.charge_id);
            let mut c: ChargeNote = set.note(NAME, event, &ck)?;
            c.invoice = Some(a.invoice_id.to_string());
            c.customer = Some(n.customer.clone());
            c.paid_for = n.total.saturating_sub(n.credit_notes);
            c.tax_in_payment = n.open_tax();
            let customer = c.customer.clone();
            set.keep(NAME, event, ck, customer, &c)?;
        }
        InvoiceEvent::CreditNoteIssued(c) if !c.refund => {
            // The note takes back its share of the invoice's tax.
            let open = n.open_tax();
            let tax = tax_share(n.credit_notes, c.amount, n.total, &n.tax, &open);
            let mut entry = Entry::new(event, &n.currency)
                .of(Some(&n.customer))
                .debit("credit_notes", c.amount.saturating_sub(total_of(&tax)))
                .credit(receivable, c.amount);
            let mut left = open;
            for (j, t) in &tax {
                entry = entry.debit(format!("tax_payable:{j}"), *t);
                if let Some(slot) = left.get_mut(j) {
                    *slot = slot.saturating_sub(*t);
                }
            }
            entry.post(set)?;
            n.tax_open = Some(left);
            n.credit_notes = sum(n.credit_notes, c.amount, event)?;
        }
        InvoiceEvent::Voided(_) if n.finalized => {
            let open = n
                .total
                .checked_sub(n.credit_notes)
                .ok_or_else(|| unreadable(event, "amount overflow".into()))?;
            let tax_open = n.open_tax();
            let tax = tax_open.values().try_fold(0, |a, t| sum(a, *t, event))?;
            let untaxed = open
                .checked_sub(tax)
                .ok_or_else(|| unreadable(event, "amount overflow".into()))?;
            let mut entry = Entry::new(event, &n.currency)
                .of(Some(&n.customer))
                .debit("invoice_voids", untaxed)
                .credit(receivable, open);
            for (jurisdiction, amount) in &tax_open {
                entry = entry.debit(format!("tax_payable:{jurisdiction}"), *amount);
            }
            entry.post(set)?;
            n.tax_open = Some(BTreeMap::new());
        }
        _ => return Ok(()),
    }
    let customer = Some(n.customer.clone());
    set.keep(NAME, event, key, customer, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(j: &str, v: i64) -> BTreeMap<String, i64> {
        BTreeMap::from([(j.to_string(), v)])
    }

    #[test]
    fn shares_on_the_running_total_add_up_to_the_whole_tax() {
        // 1,000 + 200 tax, credited in six notes of 200: 33, 34, 33, 33, 34, 33 = 200.
        let tax = map("FR", 200);
        let (mut before, mut given) = (0, 0);
        for _ in 0..6 {
            let left = map("FR", 200 - given);
            let share = tax_share(before, 200, 1_200, &tax, &left);
            given += share.get("FR").copied().unwrap_or(0);
            before += 200;
        }
        assert_eq!(given, 200);
    }

    #[test]
    fn shares_never_overflow_nor_exceed_what_is_left() {
        let tax = map("X", i64::MAX / 2);
        let share = tax_share(0, i64::MAX / 2, 3, &tax, &map("X", 5));
        assert_eq!(share.get("X"), Some(&5));
        assert!(
            tax_share(0, 100, 0, &tax, &map("X", 5)).is_empty(),
            "no base, no share"
        );
        // Half-even: 1 × 1 / 2 = 0.5 → 0; 3 × 1 / 2 = 1.5 → 2.
        assert_eq!(share_of(1, 1, 2), 0);
        assert_eq!(share_of(3, 1, 2), 2);
        assert_eq!(share_of(i64::MAX, i64::MAX, 1), i64::MAX);
    }
}
