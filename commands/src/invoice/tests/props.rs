//! Properties of totals and credit notes.

use ledger::ids::{ChargeId, CreditNoteId};
use ledger::money::{Currency, Money};
use proptest::prelude::*;

use super::{input, rate};
use crate::aggregate::Aggregate;
use crate::invoice::*;

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        Just(Currency::JPY),
        Just(Currency::USD),
        Just(Currency::KWD)
    ]
}

/// (unit amount, quantity, proration); proration lines may be negative and have quantity 1.
fn item_strategy() -> impl Strategy<Value = (i64, i64, bool)> {
    prop_oneof![
        (0..=10_000_000_i64, 1..=1_000_i64, Just(false)),
        (-10_000_000..=10_000_000_i64, Just(1_i64), Just(true)),
    ]
}

fn rates_strategy() -> impl Strategy<Value = Vec<(ledger::ids::TaxRateId, crate::pricing::TaxRate)>>
{
    (any::<bool>(), 0..=1_000_000_i64, 0..=3_usize).prop_map(|(inclusive, basis, extra)| {
        let p = format!("{}.{:04}", basis / 10_000, basis % 10_000);
        let mut rates = vec![rate("main", &p, inclusive)];
        for n in 0..extra {
            rates.push(rate(&format!("x{n}"), &format!("{}.5", n * 3), false));
        }
        rates
    })
}

fn build(
    currency: Currency,
    items: &[(i64, i64, bool)],
    rates: Vec<(ledger::ids::TaxRateId, crate::pricing::TaxRate)>,
    credit: i64,
) -> DraftInput {
    let mut i = input(currency, vec![]);
    i.items = items
        .iter()
        .map(|&(unit, quantity, proration)| ItemInput {
            description: "line".into(),
            unit_amount: Money::new(unit, currency),
            quantity,
            proration,
            period: None,
        })
        .collect();
    i.tax_rates = rates;
    i.credit_applied = Money::new(credit, currency);
    i
}

proptest! {
    #[test]
    fn totals_add_up(
        currency in currency(),
        items in prop::collection::vec(item_strategy(), 1..=20),
        rates in rates_strategy(),
        credit in 0..=100_000_000_i64,
    ) {
        let d = draft(build(currency, &items, rates, credit)).expect("fits");
        let t = d.totals;
        let amounts: i64 = d.lines.iter().map(|l| l.amount).sum();
        let taxes: i64 = d.lines.iter().flat_map(|l| &l.tax).map(|x| x.amount).sum();
        let exclusive: i64 = d.lines.iter().flat_map(|l| &l.tax)
            .filter(|x| !x.rate.is_inclusive()).map(|x| x.amount).sum();
        prop_assert_eq!(t.subtotal, amounts);
        prop_assert_eq!(t.tax, taxes);
        prop_assert_eq!(t.total, amounts + exclusive);
        prop_assert!(t.amount_due >= 0 && t.credit_applied >= 0 && t.credit_to_balance >= 0);
        prop_assert!(t.credit_applied <= credit);
        prop_assert_eq!(t.amount_due + t.credit_applied, t.total.max(0));
        prop_assert_eq!(t.credit_to_balance, (-t.total).max(0));
        for (line, (unit, quantity, _)) in d.lines.iter().zip(&items) {
            prop_assert_eq!(line.amount, unit * quantity);
        }
    }

    #[test]
    fn huge_amounts_give_an_error_not_a_panic(
        unit in any::<i64>(),
        quantity in any::<i64>(),
        proration in any::<bool>(),
        second in any::<i64>(),
        inclusive in any::<bool>(),
    ) {
        let items = [(unit, quantity, proration), (second, 1, true)];
        let rates = vec![rate("t", "99.9999", inclusive)];
        match draft(build(Currency::USD, &items, rates, i64::MAX)) {
            Ok(d) => prop_assert!(d.totals.amount_due >= 0),
            Err(InvoiceError::Overflow | InvoiceError::InvalidLine { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn credit_notes_never_exceed_what_is_allowed(
        due in 1..=1_000_000_i64,
        before in prop::collection::vec(1..=400_000_i64, 0..6),
        after in prop::collection::vec(1..=400_000_i64, 0..6),
    ) {
        let now = super::t(super::START);
        let step = |s: Option<Invoice>, c: InvoiceCommand| -> (Option<Invoice>, bool) {
            match Invoice::decide(s.as_ref(), c, now) {
                Ok(events) => (events.iter().fold(s, |s, e| Invoice::evolve(s, e, now)), true),
                Err(_) => (s, false),
            }
        };
        let usd = |a| Money::new(a, Currency::USD);
        let i = build(Currency::USD, &[(due, 1, false)], vec![], 0);
        let (mut s, _) = step(None, InvoiceCommand::Draft(i));
        (s, _) = step(s, InvoiceCommand::Finalize { number: "KB-1".into(), due_date: None });
        let mut credited = 0;
        for (n, amount) in before.into_iter().enumerate() {
            let c = InvoiceCommand::IssueCreditNote {
                credit_note_id: CreditNoteId::derived(&format!("b{n}")),
                amount: usd(amount),
                reason: CreditNoteReason::Duplicate,
            };
            let ok;
            (s, ok) = step(s, c);
            prop_assert_eq!(ok, credited + amount <= due);
            if ok { credited += amount; }
            let inv = s.as_ref().expect("state");
            prop_assert_eq!(inv.amount_remaining.amount_minor(), due - credited);
            prop_assert_eq!(inv.status == InvoiceStatus::Paid, credited == due);
        }
        let remaining = due - credited;
        if remaining > 0 {
            (s, _) = step(s, InvoiceCommand::RecordPayment {
                charge_id: ChargeId::derived("c"),
                amount: usd(remaining),
            });
        }
        let mut refunded = 0;
        for (n, amount) in after.into_iter().enumerate() {
            let c = InvoiceCommand::IssueCreditNote {
                credit_note_id: CreditNoteId::derived(&format!("a{n}")),
                amount: usd(amount),
                reason: CreditNoteReason::Fraudulent,
            };
            let ok;
            (s, ok) = step(s, c);
            prop_assert_eq!(ok, refunded + amount <= remaining);
            if ok { refunded += amount; }
        }
        let inv = s.expect("state");
        prop_assert_eq!(inv.status, InvoiceStatus::Paid);
        prop_assert_eq!(inv.amount_paid.amount_minor(), remaining);
        prop_assert_eq!(inv.post_payment_credit_notes_amount.amount_minor(), refunded);
        prop_assert!(inv.refundable().amount_minor() >= 0);
    }
}
