//! Cancellation, payments and dunning, refused changes, the stored form of events.

use ledger::ids::InvoiceId;
use ledger::money::{Currency, Money};

use super::tests::{create, gold, new_sub, plan, refused, renew, step, utc};
use super::*;
use crate::pricing::{Interval, IntervalUnit};
use crate::stored::DomainEvent;

#[test]
fn cancel_now_and_at_period_end() {
    let sub = create(new_sub(gold(), 1), utc(2026, 1, 1));
    let (canceled, events) = step(
        Some(&sub),
        SubscriptionCommand::Cancel {
            at_period_end: false,
        },
        utc(2026, 1, 5),
    )
    .expect("ok");
    let [SubscriptionEvent::Canceled(c)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((c.at, c.reason), (utc(2026, 1, 5), CancelReason::Requested));
    assert!(
        c.final_lines.is_empty(),
        "no refund of unused licensed time"
    );
    assert_eq!(canceled.status, SubscriptionStatus::Canceled);
    assert_eq!(canceled.canceled_at, Some(utc(2026, 1, 5)));
    assert_eq!(next_due(&canceled), None);
    for cancel in [true, false] {
        let command = SubscriptionCommand::Cancel {
            at_period_end: cancel,
        };
        assert!(
            step(Some(&canceled), command, utc(2026, 1, 6))
                .expect("ok")
                .1
                .is_empty()
        );
    }
    let change = SubscriptionCommand::Change {
        plan: None,
        quantity: Some(2),
        proration_behavior: ProrationBehavior::None,
    };
    assert_eq!(
        refused(Some(&canceled), change, utc(2026, 1, 6)),
        SubscriptionError::Canceled
    );
    assert_eq!(
        refused(Some(&canceled), SubscriptionCommand::Pause, utc(2026, 1, 6)),
        SubscriptionError::Canceled
    );

    let at_end = SubscriptionCommand::Cancel {
        at_period_end: true,
    };
    let (scheduled, events) = step(Some(&sub), at_end.clone(), utc(2026, 1, 5)).expect("ok");
    assert!(
        matches!(events.as_slice(), [SubscriptionEvent::CancelScheduled(s)] if s.cancel_at == utc(2026, 2, 1))
    );
    assert!(scheduled.cancel_at_period_end);
    assert!(
        step(Some(&scheduled), at_end, utc(2026, 1, 6))
            .expect("ok")
            .1
            .is_empty()
    );
    let (ended, events) = renew(&scheduled, utc(2026, 2, 1));
    let [SubscriptionEvent::Canceled(c)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!((c.at, c.reason), (utc(2026, 2, 1), CancelReason::PeriodEnd));
    assert_eq!(ended.status, SubscriptionStatus::Canceled);
    // The scheduler retrying the same renewal changes nothing.
    let again = SubscriptionCommand::Renew {
        period_start: utc(2026, 2, 1),
    };
    assert!(
        step(Some(&ended), again, utc(2026, 2, 2))
            .expect("ok")
            .1
            .is_empty()
    );
}

#[test]
fn payment_failures_and_dunning() {
    let sub = create(new_sub(gold(), 1), utc(2026, 1, 1));
    let now = utc(2026, 1, 2);
    let invoice = InvoiceId::derived("i1");
    let failed = |attempt| SubscriptionCommand::PaymentFailed {
        invoice_id: invoice,
        attempt,
    };
    let succeeded = SubscriptionCommand::PaymentSucceeded {
        invoice_id: invoice,
    };
    assert!(
        step(Some(&sub), succeeded.clone(), now)
            .expect("ok")
            .1
            .is_empty()
    );
    let (past_due, events) = step(Some(&sub), failed(1), now).expect("ok");
    assert!(matches!(events.as_slice(), [SubscriptionEvent::PastDue(p)] if p.attempt == 1));
    assert_eq!(past_due.status, SubscriptionStatus::PastDue);
    assert!(
        step(Some(&past_due), failed(1), now)
            .expect("ok")
            .1
            .is_empty(),
        "once per attempt"
    );
    let (past_due, events) = step(Some(&past_due), failed(2), now).expect("ok");
    assert_eq!(events.len(), 1);
    assert!(
        next_due(&past_due).is_some(),
        "renewals continue while past due"
    );
    let (recovered, events) = step(Some(&past_due), succeeded.clone(), now).expect("ok");
    assert!(matches!(
        events.as_slice(),
        [SubscriptionEvent::PaymentRecovered(_)]
    ));
    assert_eq!(recovered.status, SubscriptionStatus::Active);

    let exhausted = |outcome| SubscriptionCommand::DunningExhausted {
        invoice_id: invoice,
        outcome,
    };
    assert!(
        step(Some(&recovered), exhausted(DunningOutcome::Cancel), now)
            .expect("ok")
            .1
            .is_empty(),
        "stale"
    );
    let (unpaid, events) =
        step(Some(&past_due), exhausted(DunningOutcome::MarkUnpaid), now).expect("ok");
    assert!(matches!(
        events.as_slice(),
        [SubscriptionEvent::MarkedUnpaid(_)]
    ));
    assert_eq!(unpaid.status, SubscriptionStatus::Unpaid);
    assert_eq!(next_due(&unpaid), None);
    let renewal = SubscriptionCommand::Renew {
        period_start: unpaid.current_period_end,
    };
    assert!(
        step(Some(&unpaid), renewal, utc(2026, 2, 1))
            .expect("ok")
            .1
            .is_empty()
    );
    let (back, _) = step(Some(&unpaid), succeeded, now).expect("ok");
    assert_eq!(back.status, SubscriptionStatus::Active);
    let (canceled, events) =
        step(Some(&past_due), exhausted(DunningOutcome::Cancel), now).expect("ok");
    assert!(
        matches!(events.as_slice(), [SubscriptionEvent::Canceled(c)] if c.reason == CancelReason::PaymentFailed)
    );
    assert_eq!(canceled.status, SubscriptionStatus::Canceled);
    assert!(
        step(Some(&canceled), failed(3), now)
            .expect("ok")
            .1
            .is_empty()
    );
}

#[test]
fn changes_that_are_refused_or_empty() {
    let sub = create(new_sub(gold(), 1), utc(2026, 1, 1));
    let now = utc(2026, 1, 10);
    let to = |plan| SubscriptionCommand::Change {
        plan: Some(plan),
        quantity: None,
        proration_behavior: ProrationBehavior::CreateProrations,
    };
    let mut yearly = gold();
    yearly.interval = Interval::new(IntervalUnit::Year, 1).expect("valid");
    assert!(matches!(
        refused(Some(&sub), to(yearly), now),
        SubscriptionError::IntervalMismatch { .. }
    ));
    let mut euro = gold();
    euro.price = Money::new(1000, Currency::EUR);
    assert_eq!(
        refused(Some(&sub), to(euro), now),
        SubscriptionError::CurrencyMismatch {
            current: Currency::USD,
            new: Currency::EUR
        }
    );
    assert_eq!(
        refused(Some(&sub), to(plan("Gold", 1000, UsageType::Metered)), now),
        SubscriptionError::UsageTypeMismatch
    );
    let seats = |q| SubscriptionCommand::Change {
        plan: None,
        quantity: Some(q),
        proration_behavior: ProrationBehavior::None,
    };
    assert_eq!(
        refused(Some(&sub), seats(0), now),
        SubscriptionError::QuantityInvalid
    );
    assert!(
        step(Some(&sub), seats(1), now).expect("ok").1.is_empty(),
        "nothing changes"
    );
    assert_eq!(
        refused(Some(&sub), seats(2), utc(2026, 2, 1)),
        SubscriptionError::PeriodEnded {
            period_end: utc(2026, 2, 1)
        }
    );
    let (changed, _) = step(Some(&sub), seats(2), now).expect("ok");
    assert_eq!(changed.quantity, 2);
    assert!(changed.pending_items.is_empty(), "proration_behavior none");
}

#[test]
fn events_round_trip_through_the_envelope() {
    let mut new = new_sub(gold(), 1);
    new.trial_end = Some(utc(2026, 1, 15));
    let sub = create(new, utc(2026, 1, 1));
    let mut all = Subscription::decide(
        None,
        SubscriptionCommand::Create(new_sub(gold(), 1)),
        utc(2026, 1, 1),
    )
    .expect("ok");
    let (mut sub, events) = step(
        Some(&sub),
        SubscriptionCommand::Renew {
            period_start: utc(2026, 1, 15),
        },
        utc(2026, 1, 15),
    )
    .expect("ok");
    all.extend(events);
    let invoice = InvoiceId::derived("i");
    for command in [
        SubscriptionCommand::Change {
            plan: None,
            quantity: Some(3),
            proration_behavior: ProrationBehavior::AlwaysInvoice,
        },
        SubscriptionCommand::Pause,
        SubscriptionCommand::Resume,
        SubscriptionCommand::Cancel {
            at_period_end: true,
        },
        SubscriptionCommand::PaymentFailed {
            invoice_id: invoice,
            attempt: 1,
        },
        SubscriptionCommand::PaymentSucceeded {
            invoice_id: invoice,
        },
        SubscriptionCommand::PaymentFailed {
            invoice_id: invoice,
            attempt: 2,
        },
        SubscriptionCommand::DunningExhausted {
            invoice_id: invoice,
            outcome: DunningOutcome::MarkUnpaid,
        },
        SubscriptionCommand::DunningExhausted {
            invoice_id: invoice,
            outcome: DunningOutcome::Cancel,
        },
    ] {
        let (next, events) = step(Some(&sub), command, utc(2026, 1, 20)).expect("ok");
        assert!(!events.is_empty());
        all.extend(events);
        sub = next;
    }
    let metered = create(
        new_sub(plan("Api", 5, UsageType::Metered), 1),
        utc(2026, 1, 1),
    );
    let usage = SubscriptionCommand::RecordUsage {
        quantity: 7,
        timestamp: utc(2026, 1, 2),
        action: UsageAction::Set,
    };
    all.extend(Subscription::decide(Some(&metered), usage, utc(2026, 1, 3)).expect("ok"));
    assert_eq!(all.len(), 13);
    for e in &all {
        let payload = e.payload();
        assert_eq!(
            SubscriptionEvent::from_stored(e.event_type(), &payload).as_ref(),
            Some(e)
        );
    }
    assert_eq!(all[0].payload()["status"], "active");
    assert_eq!(all[0].payload()["plan"]["interval"], "month");
    assert_eq!(all[0].payload()["plan"]["price"]["amount"], 1000);
    assert_eq!(
        all[0].payload()["invoice_lines"][0]["period_start"],
        "2026-01-01T00:00:00Z"
    );
    assert_eq!(all[3].payload()["proration_behavior"], "always_invoice");
    assert_eq!(all[12].payload()["action"], "set");
    assert!(SubscriptionEvent::from_stored("Nope", &all[0].payload()).is_none());
}
