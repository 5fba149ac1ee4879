//! Commands and status transitions (billing amounts: `tests_billing.rs`).

use chrono::{DateTime, TimeZone, Utc};
use ledger::ids::{CustomerId, PlanId, SubscriptionId};
use ledger::money::{Currency, Money};

use super::*;
use crate::pricing::{Interval, IntervalUnit};

pub(super) type Events = Vec<SubscriptionEvent>;

pub(super) fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("valid date")
}

pub(super) fn plan(name: &str, price: i64, usage_type: UsageType) -> PlanSnapshot {
    PlanSnapshot {
        plan_id: PlanId::derived(name),
        name: name.into(),
        price: Money::new(price, Currency::USD),
        interval: Interval::new(IntervalUnit::Month, 1).expect("valid"),
        usage_type,
        tiers: vec![],
    }
}

pub(super) fn gold() -> PlanSnapshot {
    plan("Gold", 1000, UsageType::Licensed)
}

pub(super) fn new_sub(plan: PlanSnapshot, quantity: u32) -> NewSubscription {
    NewSubscription {
        subscription_id: SubscriptionId::derived("s1"),
        customer_id: CustomerId::derived("c1"),
        plan,
        quantity,
        trial_end: None,
        billing_cycle_anchor: None,
    }
}

/// Decides and folds; the new state and the events.
pub(super) fn step(
    state: Option<&Subscription>,
    command: SubscriptionCommand,
    now: DateTime<Utc>,
) -> Result<(Subscription, Events), SubscriptionError> {
    let events = Subscription::decide(state, command, now)?;
    let folded = events
        .iter()
        .fold(state.cloned(), |s, e| Subscription::evolve(s, e, now));
    Ok((folded.expect("a state"), events))
}

pub(super) fn create(new: NewSubscription, now: DateTime<Utc>) -> Subscription {
    step(None, SubscriptionCommand::Create(new), now)
        .expect("created")
        .0
}

pub(super) fn renew(sub: &Subscription, now: DateTime<Utc>) -> (Subscription, Events) {
    let command = SubscriptionCommand::Renew {
        period_start: sub.current_period_end,
    };
    step(Some(sub), command, now).expect("renewed")
}

pub(super) fn refused(
    sub: Option<&Subscription>,
    command: SubscriptionCommand,
    now: DateTime<Utc>,
) -> SubscriptionError {
    Subscription::decide(sub, command, now).expect_err("refused")
}

#[test]
fn create_bills_the_first_period_in_advance() {
    let now = utc(2026, 1, 15);
    let events = Subscription::decide(None, SubscriptionCommand::Create(new_sub(gold(), 2)), now)
        .expect("ok");
    let [SubscriptionEvent::Created(created)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(created.status, SubscriptionStatus::Active);
    assert_eq!(
        (created.anchor, created.current_period_end),
        (now, utc(2026, 2, 15))
    );
    assert_eq!(created.first_period_amount, None);
    assert_eq!(created.invoice_lines.len(), 1);
    let line = &created.invoice_lines[0];
    assert_eq!(
        (line.unit_amount, line.quantity, line.amount()),
        (1000, 2, Ok(2000))
    );
    assert_eq!(line.description, "2 × Gold (at 10.00 USD / month)");
    let sub = create(new_sub(gold(), 2), now);
    assert_eq!(sub.current_period(), (now, utc(2026, 2, 15)));
    assert_eq!(sub.created, now);
    assert_eq!(
        next_due(&sub),
        Some((
            utc(2026, 2, 15),
            Due::Renewal {
                period_start: utc(2026, 2, 15)
            }
        ))
    );
}

#[test]
fn create_with_a_future_anchor_prorates_the_first_period() {
    let now = utc(2026, 1, 10);
    let mut new = new_sub(plan("Gold", 3100, UsageType::Licensed), 1);
    new.billing_cycle_anchor = Some(utc(2026, 2, 1));
    let (sub, events) = step(None, SubscriptionCommand::Create(new), now).expect("ok");
    let SubscriptionEvent::Created(created) = &events[0] else {
        panic!("{events:?}")
    };
    // 22 of the 31 days of [Jan 1, Feb 1): 3100 × 22 / 31.
    assert_eq!(created.first_period_amount, Some(2200));
    assert!(created.invoice_lines[0].proration);
    assert_eq!(sub.current_period(), (now, utc(2026, 2, 1)));
    assert_eq!(sub.anchor, utc(2026, 2, 1));
    let (sub, _) = renew(&sub, utc(2026, 2, 1));
    assert_eq!(sub.current_period(), (utc(2026, 2, 1), utc(2026, 3, 1)));
}

#[test]
fn trial_then_renewal_at_trial_end_starts_the_first_paid_period() {
    let now = utc(2026, 1, 1);
    let mut new = new_sub(gold(), 1);
    new.trial_end = Some(utc(2026, 1, 15));
    let (sub, events) = step(None, SubscriptionCommand::Create(new), now).expect("ok");
    let SubscriptionEvent::Created(created) = &events[0] else {
        panic!("{events:?}")
    };
    assert!(created.invoice_lines.is_empty());
    assert_eq!(sub.status, SubscriptionStatus::Trialing);
    assert_eq!(sub.current_period(), (now, utc(2026, 1, 15)));
    let due = next_due(&sub).expect("due");
    assert_eq!(
        due,
        (
            utc(2026, 1, 15),
            Due::TrialEnd {
                period_start: utc(2026, 1, 15)
            }
        )
    );
    let (sub, events) = step(Some(&sub), due.1.command(), utc(2026, 1, 15)).expect("ok");
    let [
        SubscriptionEvent::TrialEnded(ended),
        SubscriptionEvent::Renewed(renewed),
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert_eq!(ended.trial_end, utc(2026, 1, 15));
    assert_eq!(
        (renewed.period_start, renewed.period_end),
        (utc(2026, 1, 15), utc(2026, 2, 15))
    );
    assert_eq!(renewed.invoice_lines.len(), 1);
    assert_eq!(renewed.invoice_lines[0].amount(), Ok(1000));
    assert_eq!(sub.status, SubscriptionStatus::Active);
}

#[test]
fn bad_creations_are_refused() {
    let now = utc(2026, 1, 31);
    type Change = fn(&mut NewSubscription);
    let cases: Vec<(Change, SubscriptionError)> = vec![
        (|n| n.quantity = 0, SubscriptionError::QuantityInvalid),
        (
            |n| n.quantity = QUANTITY_MAX + 1,
            SubscriptionError::QuantityInvalid,
        ),
        (
            |n| {
                n.plan = plan("Api", 2, UsageType::Metered);
                n.quantity = 2;
            },
            SubscriptionError::QuantityInvalid,
        ),
        (
            |n| n.plan.price = Money::new(-1, Currency::USD),
            SubscriptionError::PriceInvalid,
        ),
        (
            |n| n.trial_end = Some(utc(2026, 1, 31)),
            SubscriptionError::TrialInvalid,
        ),
        (
            |n| n.trial_end = Some(utc(2028, 2, 1)),
            SubscriptionError::TrialInvalid,
        ),
        (
            |n| n.billing_cycle_anchor = Some(utc(2026, 1, 30)),
            SubscriptionError::AnchorInvalid,
        ),
        // One month after Jan 31 is Feb 28: the anchor must be before it.
        (
            |n| n.billing_cycle_anchor = Some(utc(2026, 2, 28)),
            SubscriptionError::AnchorInvalid,
        ),
        (
            |n| {
                n.billing_cycle_anchor = Some(utc(2026, 2, 10));
                n.trial_end = Some(utc(2026, 2, 5));
            },
            SubscriptionError::AnchorInvalid,
        ),
    ];
    for (change, expected) in cases {
        let mut new = new_sub(gold(), 1);
        change(&mut new);
        assert_eq!(
            refused(None, SubscriptionCommand::Create(new), now),
            expected
        );
    }
    let mut metered = new_sub(plan("Api", 2, UsageType::Metered), 1);
    metered.billing_cycle_anchor = Some(now);
    assert!(Subscription::decide(None, SubscriptionCommand::Create(metered), now).is_ok());
    let sub = create(new_sub(gold(), QUANTITY_MAX), now);
    assert_eq!(
        refused(
            Some(&sub),
            SubscriptionCommand::Create(new_sub(gold(), 1)),
            now
        ),
        SubscriptionError::AlreadyExists(sub.id)
    );
    assert_eq!(
        refused(None, SubscriptionCommand::Pause, now),
        SubscriptionError::NotFound
    );
}

#[test]
fn renewal_is_idempotent_and_only_when_due() {
    let sub = create(new_sub(gold(), 1), utc(2026, 1, 1));
    let early = SubscriptionCommand::Renew {
        period_start: utc(2026, 2, 1),
    };
    assert!(matches!(
        refused(Some(&sub), early, utc(2026, 1, 31)),
        SubscriptionError::NotDue { .. }
    ));
    let skip = SubscriptionCommand::Renew {
        period_start: utc(2026, 3, 1),
    };
    assert!(matches!(
        refused(Some(&sub), skip, utc(2026, 3, 2)),
        SubscriptionError::NotDue { .. }
    ));
    let (renewed, events) = renew(&sub, utc(2026, 2, 1));
    assert_eq!(events.len(), 1);
    let again = SubscriptionCommand::Renew {
        period_start: utc(2026, 2, 1),
    };
    let (same, events) = step(Some(&renewed), again, utc(2026, 2, 2)).expect("ok");
    assert!(events.is_empty());
    assert_eq!(same, renewed);
}

#[test]
fn pause_and_resume_collection() {
    let sub = create(new_sub(gold(), 1), utc(2026, 1, 1));
    let (paused, events) =
        step(Some(&sub), SubscriptionCommand::Pause, utc(2026, 1, 2)).expect("ok");
    assert!(matches!(events.as_slice(), [SubscriptionEvent::Paused(_)]));
    assert_eq!(paused.status, SubscriptionStatus::Paused);
    assert!(
        step(Some(&paused), SubscriptionCommand::Pause, utc(2026, 1, 3))
            .expect("ok")
            .1
            .is_empty()
    );
    // The period advances, nothing is billed.
    let (paused, events) = renew(&paused, utc(2026, 2, 1));
    let [SubscriptionEvent::Renewed(renewed)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert!(renewed.invoice_lines.is_empty());
    assert_eq!(paused.current_period(), (utc(2026, 2, 1), utc(2026, 3, 1)));
    let (active, events) =
        step(Some(&paused), SubscriptionCommand::Resume, utc(2026, 2, 2)).expect("ok");
    assert!(matches!(events.as_slice(), [SubscriptionEvent::Resumed(_)]));
    assert_eq!(active.status, SubscriptionStatus::Active);
    assert!(
        step(Some(&active), SubscriptionCommand::Resume, utc(2026, 2, 3))
            .expect("ok")
            .1
            .is_empty()
    );
    let mut trial = new_sub(gold(), 1);
    trial.trial_end = Some(utc(2026, 1, 10));
    let trialing = create(trial, utc(2026, 1, 1));
    assert_eq!(
        refused(Some(&trialing), SubscriptionCommand::Pause, utc(2026, 1, 2)),
        SubscriptionError::StatusInvalid {
            action: "pause",
            status: SubscriptionStatus::Trialing
        }
    );
}
