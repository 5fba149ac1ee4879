//! Status transitions, payments, credit notes and the event envelope.

use ledger::ids::{ChargeId, CreditNoteId};
use ledger::money::{Currency, Money};

use super::{START, input, item, t};
use crate::aggregate::Aggregate;
use crate::invoice::*;
use crate::stored::DomainEvent;

fn usd(a: i64) -> Money {
    Money::new(a, Currency::USD)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    t(START + 3600)
}

/// Decides and folds; answers the new state and the events.
fn run(
    state: Option<&Invoice>,
    command: InvoiceCommand,
) -> Result<(Invoice, Vec<InvoiceEvent>), InvoiceError> {
    let events = Invoice::decide(state, command, now())?;
    let folded = events
        .iter()
        .fold(state.cloned(), |s, e| Invoice::evolve(s, e, now()));
    Ok((folded.expect("a state"), events))
}

fn drafted(amount: i64) -> Invoice {
    let i = input(Currency::USD, vec![item("Pro", usd(amount), 1)]);
    run(None, InvoiceCommand::Draft(i)).expect("valid").0
}

fn finalize() -> InvoiceCommand {
    InvoiceCommand::Finalize {
        number: format_number("KB", 1),
        due_date: None,
    }
}

fn open(amount: i64) -> Invoice {
    run(Some(&drafted(amount)), finalize())
        .expect("finalizes")
        .0
}

fn pay(charge: &str, amount: i64) -> InvoiceCommand {
    InvoiceCommand::RecordPayment {
        charge_id: ChargeId::derived(charge),
        amount: usd(amount),
    }
}

fn credit(id: &str, amount: i64) -> InvoiceCommand {
    InvoiceCommand::IssueCreditNote {
        credit_note_id: CreditNoteId::derived(id),
        amount: usd(amount),
        reason: CreditNoteReason::OrderChange,
    }
}

fn fail(charge: &str, attempt: u32) -> InvoiceCommand {
    InvoiceCommand::RecordPaymentFailure {
        charge_id: ChargeId::derived(charge),
        attempt,
        failure_code: "card_declined".into(),
        next_attempt_at: Some(t(START + 3 * 86_400)),
    }
}

fn decide(inv: &Invoice, command: InvoiceCommand) -> Result<Vec<InvoiceEvent>, InvoiceError> {
    Invoice::decide(Some(inv), command, now())
}

#[test]
fn numbers_have_at_least_six_digits() {
    assert_eq!(format_number("KB", 1), "KB-000001");
    assert_eq!(format_number("KB", 999_999), "KB-999999");
    assert_eq!(format_number("KB", 1_234_567), "KB-1234567");
}

#[test]
fn a_missing_invoice_takes_only_a_draft() {
    assert_eq!(
        Invoice::decide(None, finalize(), now()),
        Err(InvoiceError::NotFound)
    );
    let inv = drafted(1000);
    assert_eq!(inv.status, InvoiceStatus::Draft);
    assert_eq!(inv.created, now());
    let again = InvoiceCommand::Draft(input(Currency::USD, vec![item("Pro", usd(1), 1)]));
    assert_eq!(
        decide(&inv, again),
        Err(InvoiceError::AlreadyExists(inv.id))
    );
}

#[test]
fn finalize_numbers_a_draft_once() {
    let inv = drafted(1000);
    let due = Some(t(START + 30 * 86_400));
    let command = InvoiceCommand::Finalize {
        number: "KB-000007".into(),
        due_date: due,
    };
    let (inv, events) = run(Some(&inv), command).expect("finalizes");
    assert_eq!(events.len(), 1);
    assert_eq!(inv.status, InvoiceStatus::Open);
    assert_eq!(inv.number.as_deref(), Some("KB-000007"));
    assert_eq!((inv.due_date, inv.finalized_at), (due, Some(now())));
    assert_eq!(
        decide(&inv, finalize()),
        Err(InvoiceError::NotDraft(InvoiceStatus::Open))
    );
    let draft = drafted(1000);
    for bad in ["", "KB 1", &"x".repeat(65)] {
        let c = InvoiceCommand::Finalize {
            number: bad.into(),
            due_date: None,
        };
        assert_eq!(
            decide(&draft, c),
            Err(InvoiceError::NumberInvalid),
            "{bad:?}"
        );
    }
    let past = InvoiceCommand::Finalize {
        number: "KB-1".into(),
        due_date: Some(t(START)),
    };
    assert_eq!(decide(&draft, past), Err(InvoiceError::DueDateInPast));
}

#[test]
fn nothing_due_is_paid_on_finalize() {
    let (inv, events) = run(Some(&drafted(0)), finalize()).expect("finalizes");
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1],
        InvoiceEvent::Paid(InvoicePaid {
            invoice_id: inv.id,
            charge_id: None,
            amount_paid: 0
        })
    );
    assert_eq!(
        (inv.status, inv.paid_at),
        (InvoiceStatus::Paid, Some(now()))
    );
}

#[test]
fn attempts_failures_and_payment() {
    let inv = open(1000);
    let attempt = |c: &str, n| InvoiceCommand::AttemptPayment {
        charge_id: ChargeId::derived(c),
        attempt: n,
    };
    assert_eq!(
        decide(&drafted(1000), attempt("c1", 1)),
        Err(InvoiceError::NotOpen(InvoiceStatus::Draft))
    );
    assert_eq!(
        decide(&inv, attempt("c1", 0)),
        Err(InvoiceError::AttemptInvalid)
    );
    let (inv, _) = run(Some(&inv), attempt("c1", 1)).expect("attempts");
    assert_eq!(
        decide(&inv, attempt("c1", 1)),
        Ok(vec![]),
        "same charge: nothing new"
    );
    let (inv, _) = run(Some(&inv), fail("c1", 1)).expect("records");
    assert_eq!(inv.attempt_count, 1);
    assert_eq!(inv.last_failure_code.as_deref(), Some("card_declined"));
    assert_eq!(inv.next_payment_attempt, Some(t(START + 3 * 86_400)));
    assert_eq!(
        decide(&inv, fail("c1", 1)),
        Ok(vec![]),
        "idempotent per charge"
    );
    let bad_code = InvoiceCommand::RecordPaymentFailure {
        charge_id: ChargeId::derived("c2"),
        attempt: 2,
        failure_code: "".into(),
        next_attempt_at: None,
    };
    assert_eq!(
        decide(&inv, bad_code),
        Err(InvoiceError::FailureCodeInvalid)
    );
    let (inv, _) = run(Some(&inv), attempt("c2", 2)).expect("attempts");
    assert_eq!(inv.attempt_count, 2);
    assert_eq!(
        decide(&inv, pay("c2", 999)),
        Err(InvoiceError::PaymentAmountMismatch {
            expected: 1000,
            found: 999
        })
    );
    let eur = InvoiceCommand::RecordPayment {
        charge_id: ChargeId::derived("c2"),
        amount: Money::new(1000, Currency::EUR),
    };
    assert!(matches!(
        decide(&inv, eur),
        Err(InvoiceError::CurrencyMismatch { .. })
    ));
    let (inv, _) = run(Some(&inv), pay("c2", 1000)).expect("pays");
    assert_eq!(inv.status, InvoiceStatus::Paid);
    assert_eq!((inv.amount_paid, inv.amount_remaining), (usd(1000), usd(0)));
    assert_eq!(inv.paid_by, Some(ChargeId::derived("c2")));
    assert_eq!(inv.next_payment_attempt, None);
    assert_eq!(
        decide(&inv, pay("c2", 1000)),
        Ok(vec![]),
        "same charge again: nothing"
    );
    assert_eq!(
        decide(&inv, pay("c3", 1000)),
        Err(InvoiceError::AlreadyPaid)
    );
    assert_eq!(decide(&inv, fail("c3", 3)), Err(InvoiceError::AlreadyPaid));
    assert_eq!(
        decide(&inv, attempt("c3", 3)),
        Err(InvoiceError::AlreadyPaid)
    );
    assert_eq!(
        decide(&inv, InvoiceCommand::Void),
        Err(InvoiceError::AlreadyPaid)
    );
    assert_eq!(
        decide(&inv, InvoiceCommand::MarkUncollectible),
        Err(InvoiceError::AlreadyPaid)
    );
    assert_eq!(
        decide(&drafted(5), pay("c1", 5)),
        Err(InvoiceError::NotOpen(InvoiceStatus::Draft))
    );
}

#[test]
fn void_and_uncollectible() {
    for inv in [drafted(1000), open(1000)] {
        let (void, _) = run(Some(&inv), InvoiceCommand::Void).expect("voids");
        assert_eq!(
            (void.status, void.voided_at),
            (InvoiceStatus::Void, Some(now()))
        );
        assert_eq!(
            decide(&void, InvoiceCommand::Void),
            Ok(vec![]),
            "void twice: nothing"
        );
        assert_eq!(decide(&void, pay("c", 1000)), Err(InvoiceError::Voided));
        assert_eq!(
            decide(&void, InvoiceCommand::MarkUncollectible),
            Err(InvoiceError::Voided)
        );
        assert_eq!(decide(&void, credit("cn", 1)), Err(InvoiceError::Voided));
        assert_eq!(
            decide(&void, InvoiceCommand::MarkSent),
            Err(InvoiceError::Voided)
        );
    }
    assert_eq!(
        decide(&drafted(1000), InvoiceCommand::MarkUncollectible),
        Err(InvoiceError::NotOpen(InvoiceStatus::Draft))
    );
    let (bad, _) = run(Some(&open(1000)), InvoiceCommand::MarkUncollectible).expect("marks");
    assert_eq!(bad.status, InvoiceStatus::Uncollectible);
    assert_eq!(decide(&bad, InvoiceCommand::MarkUncollectible), Ok(vec![]));
    assert_eq!(decide(&bad, fail("c9", 4)).map(|e| e.len()), Ok(1));
    let (paid, _) = run(Some(&bad), pay("late", 1000)).expect("still payable");
    assert_eq!(paid.status, InvoiceStatus::Paid);
    let (void, _) = run(Some(&bad), InvoiceCommand::Void).expect("still voidable");
    assert_eq!(void.status, InvoiceStatus::Void);
}

#[test]
fn credit_notes_before_payment_lower_what_is_due() {
    assert_eq!(
        decide(&drafted(1000), credit("cn", 1)),
        Err(InvoiceError::NotFinalized)
    );
    let inv = open(1000);
    assert_eq!(
        decide(&inv, credit("cn", 0)),
        Err(InvoiceError::CreditNoteAmountInvalid)
    );
    assert_eq!(
        decide(&inv, credit("cn", 1001)),
        Err(InvoiceError::CreditNoteTooLarge { max: 1000 })
    );
    let (inv, events) = run(Some(&inv), credit("cn1", 300)).expect("credits");
    assert_eq!(events.len(), 1);
    assert_eq!((inv.amount_due, inv.amount_remaining), (usd(700), usd(700)));
    assert_eq!(inv.pre_payment_credit_notes_amount, usd(300));
    assert!(!inv.credit_notes[0].refund);
    assert_eq!(
        decide(&inv, credit("cn1", 300)),
        Ok(vec![]),
        "same credit note: nothing"
    );
    assert_eq!(
        decide(&inv, credit("cn2", 701)),
        Err(InvoiceError::CreditNoteTooLarge { max: 700 })
    );
    let (settled, events) = run(Some(&inv), credit("cn2", 700)).expect("credits");
    assert_eq!(
        events.len(),
        2,
        "crediting all that is left settles the invoice"
    );
    assert_eq!(
        (settled.status, settled.amount_paid),
        (InvoiceStatus::Paid, usd(0))
    );
    assert_eq!(
        decide(&settled, credit("cn3", 1)),
        Err(InvoiceError::CreditNoteTooLarge { max: 0 })
    );
    let (paid, _) = run(Some(&inv), pay("c", 700)).expect("pays the rest");
    assert_eq!(paid.amount_paid, usd(700));
}

#[test]
fn credit_notes_after_payment_are_refunds() {
    let (paid, _) = run(Some(&open(1000)), pay("c", 1000)).expect("pays");
    let (paid, events) = run(Some(&paid), credit("r1", 400)).expect("refunds");
    let InvoiceEvent::CreditNoteIssued(e) = &events[0] else {
        panic!("a credit note");
    };
    assert!(e.refund);
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert_eq!(paid.post_payment_credit_notes_amount, usd(400));
    assert_eq!(
        paid.amount_due,
        usd(1000),
        "a refund does not change what was due"
    );
    assert_eq!(
        decide(&paid, credit("r2", 601)),
        Err(InvoiceError::CreditNoteTooLarge { max: 600 })
    );
    let (paid, _) = run(Some(&paid), credit("r2", 600)).expect("refunds the rest");
    assert_eq!(paid.refundable(), usd(0));
    assert_eq!(credit_note_max(&paid), Ok((usd(0), true)));
    let (bad, _) = run(Some(&open(1000)), InvoiceCommand::MarkUncollectible).expect("marks");
    assert_eq!(credit_note_max(&bad), Ok((usd(1000), false)));
}

#[test]
fn sending() {
    assert_eq!(
        decide(&drafted(1), InvoiceCommand::MarkSent),
        Err(InvoiceError::NotFinalized)
    );
    let (inv, _) = run(Some(&open(1)), InvoiceCommand::MarkSent).expect("sends");
    assert_eq!(inv.last_sent_at, Some(now()));
    assert_eq!(
        decide(&inv, InvoiceCommand::MarkSent).map(|e| e.len()),
        Ok(1),
        "resend"
    );
}

#[test]
fn events_round_trip_through_the_envelope() {
    let mut i = input(Currency::USD, vec![item("Pro", usd(1000), 2)]);
    i.tax_rates = vec![super::rate("t", "8.25", false)];
    let mut events = Invoice::decide(None, InvoiceCommand::Draft(i), now()).expect("valid");
    let mut state = Invoice::evolve(None, &events[0], now());
    for command in [
        finalize(),
        InvoiceCommand::AttemptPayment {
            charge_id: ChargeId::derived("c1"),
            attempt: 1,
        },
        fail("c1", 1),
        InvoiceCommand::MarkSent,
        credit("cn", 165),
        InvoiceCommand::MarkUncollectible,
        pay("c2", 2000),
        InvoiceCommand::Void,
    ] {
        let Ok(new) = Invoice::decide(state.as_ref(), command.clone(), now()) else {
            continue; // void after payment is refused: fine here
        };
        for e in &new {
            state = Invoice::evolve(state, e, now());
        }
        events.extend(new);
    }
    assert_eq!(events.len(), 8, "{events:?}");
    let payload = events[0].payload();
    assert_eq!(payload["billing_reason"], "subscription_cycle");
    assert_eq!(payload["currency"], "usd");
    // 2000 × 8.25 % = 165; total 2165.
    assert_eq!(
        (payload["subtotal"].as_i64(), payload["total"].as_i64()),
        (Some(2000), Some(2165))
    );
    assert_eq!(payload["lines"][0]["tax"][0]["percentage"], "8.25");
    assert_eq!(payload["lines"][0]["tax"][0]["inclusive"], false);
    assert_eq!(state.map(|s| s.status), Some(InvoiceStatus::Paid));
    for e in &events {
        let back = InvoiceEvent::from_stored(e.event_type(), &e.payload());
        assert_eq!(back.as_ref(), Some(e), "{}", e.event_type());
        assert_eq!(e.invoice_id(), events[0].invoice_id());
    }
    assert_eq!(InvoiceEvent::from_stored("InvoiceUnknown", &payload), None);
}
