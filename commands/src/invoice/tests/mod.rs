//! Tests of the invoice aggregate: drafts and totals here, the life cycle and credit notes in
//! [`lifecycle`], properties in [`props`].

mod lifecycle;
mod props;

use chrono::{DateTime, Utc};
use ledger::ids::{CustomerId, InvoiceId, SubscriptionId, TaxRateId};
use ledger::money::{Currency, Money};

use super::*;
use crate::pricing::TaxRate;

pub(super) fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).expect("in range")
}

pub(super) const START: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

pub(super) fn rate(id: &str, percentage: &str, inclusive: bool) -> (TaxRateId, TaxRate) {
    (
        TaxRateId::derived(id),
        TaxRate::new(percentage, inclusive).expect("valid rate"),
    )
}

pub(super) fn item(description: &str, unit: Money, quantity: i64) -> ItemInput {
    ItemInput {
        description: description.into(),
        unit_amount: unit,
        quantity,
        proration: false,
        period: None,
    }
}

pub(super) fn input(currency: Currency, items: Vec<ItemInput>) -> DraftInput {
    DraftInput {
        invoice_id: InvoiceId::derived("in-1"),
        customer_id: CustomerId::derived("cus-1"),
        currency,
        subscription_id: Some(SubscriptionId::derived("sub-1")),
        period: Some((t(START), t(START + 31 * 86_400))),
        billing_reason: BillingReason::SubscriptionCycle,
        items,
        tax_rates: vec![],
        credit_applied: Money::zero(currency),
        owed_applied: Money::zero(currency),
    }
}

/// (subtotal, tax, total, amount_due) and the line taxes.
fn amounts(d: &InvoiceDrafted) -> ((i64, i64, i64, i64), Vec<Vec<i64>>) {
    let t = d.totals;
    let taxes = d
        .lines
        .iter()
        .map(|l| l.tax.iter().map(|x| x.amount).collect())
        .collect();
    ((t.subtotal, t.tax, t.total, t.amount_due), taxes)
}

#[test]
fn jpy_exclusive_tax_to_the_yen() {
    let jpy = |a| Money::new(a, Currency::JPY);
    let mut i = input(
        Currency::JPY,
        vec![item("Pro", jpy(1980), 3), item("Add-on", jpy(333), 1)],
    );
    i.tax_rates = vec![rate("jct", "10", false)];
    let d = draft(i).expect("valid");
    // 1980 × 3 = 5940, 10 % = 594; 333 × 10 % = 33.3 → 33.
    // subtotal 6273, tax 627, total 6900.
    assert_eq!(d.lines[0].amount, 5940);
    assert_eq!(
        amounts(&d),
        ((6273, 627, 6900, 6900), vec![vec![594], vec![33]])
    );
}

#[test]
fn jpy_inclusive_tax_to_the_yen() {
    let jpy = |a| Money::new(a, Currency::JPY);
    let mut i = input(
        Currency::JPY,
        vec![item("A", jpy(1100), 1), item("B", jpy(1234), 1)],
    );
    i.tax_rates = vec![rate("jct", "10", true)];
    let d = draft(i).expect("valid");
    // 1100 / 1.1 = 1000 → tax 100; 1234 / 1.1 = 1121.81… → 1122, tax 112.
    // subtotal 2334 (tax inside), tax 212, total 2334.
    assert_eq!(
        amounts(&d),
        ((2334, 212, 2334, 2334), vec![vec![100], vec![112]])
    );
}

#[test]
fn kwd_exclusive_tax_to_the_fils() {
    let kwd = |a| Money::new(a, Currency::KWD);
    let mut i = input(
        Currency::KWD,
        vec![item("A", kwd(1234), 2), item("B", kwd(10), 1)],
    );
    i.tax_rates = vec![rate("vat", "5", false)];
    let d = draft(i).expect("valid");
    // 2468 × 5 % = 123.4 → 123; 10 × 5 % = 0.5 → 0 (half to even).
    // subtotal 2478, tax 123, total 2601.
    assert_eq!(
        amounts(&d),
        ((2478, 123, 2601, 2601), vec![vec![123], vec![0]])
    );
}

#[test]
fn kwd_inclusive_tax_to_the_fils() {
    let kwd = |a| Money::new(a, Currency::KWD);
    let mut i = input(
        Currency::KWD,
        vec![item("A", kwd(2500), 1), item("B", kwd(3450), 1)],
    );
    i.tax_rates = vec![rate("vat", "15", true)];
    let d = draft(i).expect("valid");
    // 2500 / 1.15 = 2173.91… → 2174, tax 326; 3450 / 1.15 = 3000, tax 450.
    // subtotal 5950, tax 776, total 5950.
    assert_eq!(
        amounts(&d),
        ((5950, 776, 5950, 5950), vec![vec![326], vec![450]])
    );
}

#[test]
fn exclusive_tax_is_charged_on_the_net_of_an_inclusive_one() {
    let mut i = input(
        Currency::EUR,
        vec![item("A", Money::new(1190, Currency::EUR), 1)],
    );
    i.tax_rates = vec![rate("vat", "19", true), rate("extra", "5", false)];
    let d = draft(i).expect("valid");
    // Net 1190 / 1.19 = 1000, VAT 190; 5 % of 1000 = 50. Total 1190 + 50.
    assert_eq!(amounts(&d), ((1190, 240, 1240, 1240), vec![vec![190, 50]]));
}

#[test]
fn a_proration_credit_larger_than_the_charges_goes_to_the_balance() {
    let usd = |a| Money::new(a, Currency::USD);
    let mut credit = item("Unused time on Pro", usd(-1500), 1);
    credit.proration = true;
    credit.period = Some((t(START), t(START + 86_400)));
    let mut i = input(Currency::USD, vec![item("Basic", usd(1000), 1), credit]);
    i.tax_rates = vec![rate("tax", "10", false)];
    i.credit_applied = usd(700);
    let d = draft(i).expect("valid");
    // 1000 + 100 tax, −1500 − 150 tax: total −550; nothing due, no credit used, 550 to balance.
    assert_eq!(amounts(&d).0, (-500, -50, -550, 0));
    assert_eq!(d.totals.credit_applied, 0);
    assert_eq!(d.totals.credit_to_balance, 550);
    assert!(d.lines[1].proration);
    assert_eq!(d.lines[1].period_start, Some(t(START)));
}

#[test]
fn customer_credit_is_used_up_to_the_total() {
    let usd = |a| Money::new(a, Currency::USD);
    let mut i = input(Currency::USD, vec![item("Pro", usd(1100), 1)]);
    i.credit_applied = usd(300);
    let d = draft(i.clone()).expect("valid");
    assert_eq!(
        (
            d.totals.credit_applied,
            d.totals.amount_due,
            d.totals.credit_to_balance
        ),
        (300, 800, 0)
    );
    i.credit_applied = usd(5000);
    let d = draft(i).expect("valid");
    assert_eq!((d.totals.credit_applied, d.totals.amount_due), (1100, 0));
}

#[test]
fn bad_drafts_are_refused() {
    let usd = |a| Money::new(a, Currency::USD);
    let line_err = |index, reason: &str| InvoiceError::InvalidLine {
        index,
        reason: reason.into(),
    };
    type Change = Box<dyn Fn(&mut DraftInput)>;
    let cases: Vec<(Change, InvoiceError)> = vec![
        (Box::new(|i| i.items.clear()), InvoiceError::LineCount(0)),
        (
            Box::new(move |i| i.items = vec![item("x", usd(1), 1); 101]),
            InvoiceError::LineCount(101),
        ),
        (
            Box::new(|i| i.items[1].quantity = 0),
            line_err(1, "quantity must be from 1 to 1000000000000"),
        ),
        (
            Box::new(|i| i.items[0].quantity = 1_000_000_000_001),
            line_err(0, "quantity must be from 1 to 1000000000000"),
        ),
        (
            Box::new(|i| {
                i.items[0].proration = true;
                i.items[0].quantity = 2;
            }),
            line_err(0, "a proration line has quantity 1"),
        ),
        (
            Box::new(move |i| i.items[0].unit_amount = usd(-1)),
            line_err(0, "unit_amount may be negative only on a proration line"),
        ),
        (
            Box::new(|i| i.items[0].description = " ".into()),
            line_err(0, "description must be 1 to 500 characters, without NUL"),
        ),
        (
            Box::new(|i| i.items[0].description = "é".repeat(501)),
            line_err(0, "description must be 1 to 500 characters, without NUL"),
        ),
        (
            Box::new(|i| i.items[0].description = "a\0".into()),
            line_err(0, "description must be 1 to 500 characters, without NUL"),
        ),
        (
            Box::new(|i| i.items[0].period = Some((t(START), t(START)))),
            line_err(0, "period end must be after its start"),
        ),
        (
            Box::new(|i| i.items[1].unit_amount = Money::new(1, Currency::EUR)),
            InvoiceError::CurrencyMismatch {
                expected: Currency::USD,
                found: Currency::EUR,
            },
        ),
        (
            Box::new(|i| i.credit_applied = Money::new(1, Currency::JPY)),
            InvoiceError::CurrencyMismatch {
                expected: Currency::USD,
                found: Currency::JPY,
            },
        ),
        (
            Box::new(move |i| i.credit_applied = usd(-1)),
            InvoiceError::CreditAppliedInvalid,
        ),
        (
            Box::new(|i| i.tax_rates = vec![rate("a", "1", false), rate("a", "2", false)]),
            InvoiceError::TaxRatesInvalid("a tax rate is given twice".into()),
        ),
        (
            Box::new(|i| i.tax_rates = vec![rate("a", "1", true), rate("b", "2", true)]),
            InvoiceError::TaxRatesInvalid("at most one inclusive tax rate per line".into()),
        ),
        (
            Box::new(|i| {
                i.tax_rates = (0..6).map(|n| rate(&n.to_string(), "1", false)).collect();
            }),
            InvoiceError::TaxRatesInvalid("at most 5 tax rates per line".into()),
        ),
        (
            Box::new(|i| i.period = Some((t(START + 1), t(START)))),
            InvoiceError::InvalidPeriod,
        ),
        (
            Box::new(|i| i.subscription_id = None),
            InvoiceError::SubscriptionRequired,
        ),
        (
            Box::new(|i| i.items[0].unit_amount = Money::new(i64::MAX, Currency::USD)),
            InvoiceError::Overflow,
        ),
    ];
    for (change, expected) in cases {
        let mut i = input(
            Currency::USD,
            vec![item("A", usd(10), 2), item("B", usd(5), 1)],
        );
        change(&mut i);
        assert_eq!(draft(i), Err(expected.clone()), "{expected}");
    }
    let mut manual = input(Currency::USD, vec![item("A", usd(10), 1)]);
    manual.billing_reason = BillingReason::Manual;
    manual.subscription_id = None;
    manual.period = None;
    assert!(
        draft(manual).is_ok(),
        "a manual invoice needs no subscription"
    );
    let mut max = input(Currency::USD, vec![item("x", usd(1), 1); 100]);
    max.items[0].description = "é".repeat(500);
    max.items[1].quantity = 1_000_000;
    assert!(draft(max).is_ok(), "the limits themselves are allowed");
}

#[test]
fn overflow_is_an_error_in_sums_and_taxes() {
    let usd = |a| Money::new(a, Currency::USD);
    let half = i64::MAX / 2 + 1;
    let sum = input(
        Currency::USD,
        vec![item("A", usd(half), 1), item("B", usd(half), 1)],
    );
    assert_eq!(draft(sum), Err(InvoiceError::Overflow));
    let mut taxed = input(Currency::USD, vec![item("A", usd(i64::MAX - 10), 1)]);
    taxed.tax_rates = vec![rate("t", "10", false)];
    assert_eq!(draft(taxed), Err(InvoiceError::Overflow));
}
