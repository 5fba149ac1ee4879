//! What renewals, changes, usage and cancellations bill.

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;

use super::tests::{create, gold, new_sub, plan, renew, step, utc};
use super::*;

fn change(
    plan: Option<PlanSnapshot>,
    quantity: Option<u32>,
    behavior: ProrationBehavior,
) -> SubscriptionCommand {
    SubscriptionCommand::Change {
        plan,
        quantity,
        proration_behavior: behavior,
    }
}

fn amounts(items: &[BillingItem]) -> Vec<i64> {
    items.iter().map(|i| i.amount().expect("fits")).collect()
}

fn renewed(events: &[SubscriptionEvent]) -> &SubscriptionRenewed {
    match events {
        [SubscriptionEvent::Renewed(r)] => r,
        _ => panic!("{events:?}"),
    }
}

#[test]
fn twelve_monthly_renewals_keep_the_anchor_day() {
    let mut sub = create(new_sub(gold(), 1), utc(2026, 1, 31));
    let mut starts = vec![sub.current_period_start];
    for _ in 0..12 {
        let at = sub.current_period_end;
        let (next, events) = renew(&sub, at);
        assert_eq!(amounts(&renewed(&events).invoice_lines), [1000]);
        sub = next;
        starts.push(sub.current_period_start);
    }
    let expected: Vec<DateTime<Utc>> = [
        (2026, 1, 31),
        (2026, 2, 28),
        (2026, 3, 31),
        (2026, 4, 30),
        (2026, 5, 31),
        (2026, 6, 30),
        (2026, 7, 31),
        (2026, 8, 31),
        (2026, 9, 30),
        (2026, 10, 31),
        (2026, 11, 30),
        (2026, 12, 31),
        (2027, 1, 31),
    ]
    .into_iter()
    .map(|(y, m, d)| utc(y, m, d))
    .collect();
    assert_eq!(starts, expected);
    assert_eq!(sub.current_period_end, utc(2027, 2, 28));
    // A leap year gives Feb 29.
    let leap = create(new_sub(gold(), 1), utc(2028, 1, 31));
    assert_eq!(leap.current_period_end, utc(2028, 2, 29));
    let (leap, _) = renew(&leap, utc(2028, 2, 29));
    assert_eq!(leap.current_period_end, utc(2028, 3, 31));
}

#[test]
fn upgrade_at_half_of_a_30_day_period_creates_prorations() {
    // April has 30 days; the 16th at 00:00 is exactly half-way.
    let sub = create(new_sub(gold(), 1), utc(2026, 4, 1));
    let platinum = plan("Platinum", 3000, UsageType::Licensed);
    let now = utc(2026, 4, 16);
    let command = change(
        Some(platinum.clone()),
        None,
        ProrationBehavior::CreateProrations,
    );
    let (sub, events) = step(Some(&sub), command, now).expect("ok");
    let [SubscriptionEvent::Updated(updated)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert!(!updated.invoice_now);
    assert_eq!(amounts(&updated.proration_items), [-500, 1500]);
    assert_eq!(
        updated.proration_items[0].description,
        "Unused time on Gold after 16 Apr 2026"
    );
    assert_eq!(
        updated.proration_items[1].description,
        "Remaining time on Platinum after 16 Apr 2026"
    );
    assert!(
        updated
            .proration_items
            .iter()
            .all(|i| i.proration && i.period_end == utc(2026, 5, 1))
    );
    assert_eq!(sub.plan, platinum);
    assert_eq!(sub.pending_items, updated.proration_items);
    // The next renewal bills the new period in advance plus the pending items, then clears them.
    let (sub, events) = renew(&sub, utc(2026, 5, 1));
    assert_eq!(amounts(&renewed(&events).invoice_lines), [3000, -500, 1500]);
    assert!(sub.pending_items.is_empty());
}

#[test]
fn always_invoice_bills_the_prorations_now() {
    let sub = create(new_sub(gold(), 1), utc(2026, 4, 1));
    let command = change(None, Some(3), ProrationBehavior::AlwaysInvoice);
    let (sub, events) = step(Some(&sub), command, utc(2026, 4, 16)).expect("ok");
    let [SubscriptionEvent::Updated(updated)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert!(updated.invoice_now);
    assert_eq!(amounts(&updated.proration_items), [-500, 1500]);
    assert_eq!(
        updated.proration_items[1].description,
        "Remaining time on 3 × Gold after 16 Apr 2026"
    );
    assert!(
        sub.pending_items.is_empty(),
        "invoiced now, not kept pending"
    );
    let (_, events) = renew(&sub, utc(2026, 5, 1));
    assert_eq!(amounts(&renewed(&events).invoice_lines), [3000]);
}

#[test]
fn no_prorations_for_none_or_during_a_trial() {
    let sub = create(new_sub(gold(), 1), utc(2026, 4, 1));
    let platinum = plan("Platinum", 3000, UsageType::Licensed);
    let (_, events) = step(
        Some(&sub),
        change(Some(platinum.clone()), None, ProrationBehavior::None),
        utc(2026, 4, 16),
    )
    .expect("ok");
    assert!(
        matches!(events.as_slice(), [SubscriptionEvent::Updated(u)] if u.proration_items.is_empty() && !u.invoice_now)
    );
    let mut trial = new_sub(gold(), 1);
    trial.trial_end = Some(utc(2026, 4, 20));
    let trialing = create(trial, utc(2026, 4, 1));
    let command = change(Some(platinum), None, ProrationBehavior::AlwaysInvoice);
    let (trialing, events) = step(Some(&trialing), command, utc(2026, 4, 16)).expect("ok");
    assert!(
        matches!(events.as_slice(), [SubscriptionEvent::Updated(u)] if u.proration_items.is_empty() && !u.invoice_now)
    );
    let (_, events) = step(
        Some(&trialing),
        SubscriptionCommand::Renew {
            period_start: utc(2026, 4, 20),
        },
        utc(2026, 4, 20),
    )
    .expect("ok");
    let [_, SubscriptionEvent::Renewed(r)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        amounts(&r.invoice_lines),
        [3000],
        "the first paid period at the new price"
    );
}

#[test]
fn metered_usage_is_billed_in_arrears() {
    let api = plan("Api", 5, UsageType::Metered);
    let sub = create(new_sub(api, 1), utc(2026, 1, 1));
    assert_eq!(sub.status, SubscriptionStatus::Active);
    let usage = |quantity, day, action| SubscriptionCommand::RecordUsage {
        quantity,
        timestamp: utc(2026, 1, day),
        action,
    };
    let now = utc(2026, 1, 20);
    let (sub, _) = step(Some(&sub), usage(10, 2, UsageAction::Increment), now).expect("ok");
    let (sub, _) = step(Some(&sub), usage(5, 3, UsageAction::Increment), now).expect("ok");
    assert_eq!(sub.usage_in_period, 15);
    let (set, _) = step(Some(&sub), usage(40, 4, UsageAction::Set), now).expect("ok");
    assert_eq!(set.usage_in_period, 40);
    let (sub, events) = renew(&set, utc(2026, 2, 1));
    let lines = &renewed(&events).invoice_lines;
    assert_eq!(amounts(lines), [200]);
    assert_eq!(
        (
            lines[0].quantity,
            lines[0].period_start,
            lines[0].period_end
        ),
        (40, utc(2026, 1, 1), utc(2026, 2, 1))
    );
    assert_eq!(sub.usage_in_period, 0);
    // Refusals.
    let refused =
        |command, now| Subscription::decide(Some(&sub), command, now).expect_err("refused");
    assert_eq!(
        refused(usage(-1, 2, UsageAction::Set), utc(2026, 2, 3)),
        SubscriptionError::UsageInvalid
    );
    assert!(matches!(
        refused(usage(1, 31, UsageAction::Set), utc(2026, 2, 3)),
        SubscriptionError::UsageOutsidePeriod { .. }
    ));
    let future = SubscriptionCommand::RecordUsage {
        quantity: 1,
        timestamp: utc(2026, 2, 5),
        action: UsageAction::Set,
    };
    assert!(matches!(
        refused(future, utc(2026, 2, 3)),
        SubscriptionError::UsageOutsidePeriod { .. }
    ));
    let huge = SubscriptionCommand::RecordUsage {
        quantity: i64::MAX,
        timestamp: utc(2026, 2, 1),
        action: UsageAction::Set,
    };
    assert!(matches!(
        refused(huge, utc(2026, 2, 3)),
        SubscriptionError::UsageInvalid
    ));
    // Within a line's quantity but priced past what leaves room for tax: refused too.
    let mut pricey = sub.clone();
    pricey.plan.price = Money::new(i64::MAX / 1_000, pricey.plan.price.currency());
    let big = SubscriptionCommand::RecordUsage {
        quantity: 1_000,
        timestamp: utc(2026, 2, 1),
        action: UsageAction::Set,
    };
    assert!(matches!(
        Subscription::decide(Some(&pricey), big, utc(2026, 2, 3)),
        Err(SubscriptionError::Overflow(_))
    ));
    let licensed = create(new_sub(gold(), 1), utc(2026, 1, 1));
    let command = usage(1, 2, UsageAction::Increment);
    assert_eq!(
        Subscription::decide(Some(&licensed), command, now),
        Err(SubscriptionError::NotMetered)
    );
    // Canceling now bills the usage so far.
    let (_, events) = step(
        Some(&set),
        SubscriptionCommand::Cancel {
            at_period_end: false,
        },
        now,
    )
    .expect("ok");
    let [SubscriptionEvent::Canceled(c)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(amounts(&c.final_lines), [200]);
    assert_eq!(c.final_lines[0].period_end, now);
    // Canceling at period end bills the last period's usage in the cancellation.
    let (scheduled, _) = step(
        Some(&set),
        SubscriptionCommand::Cancel {
            at_period_end: true,
        },
        now,
    )
    .expect("ok");
    let (_, events) = renew(&scheduled, utc(2026, 2, 1));
    assert!(
        matches!(events.as_slice(), [SubscriptionEvent::Canceled(c)] if amounts(&c.final_lines) == [200])
    );
}

#[test]
fn paused_renewals_keep_pending_items_for_later() {
    let sub = create(new_sub(gold(), 1), utc(2026, 4, 1));
    let command = change(None, Some(3), ProrationBehavior::CreateProrations);
    let (sub, _) = step(Some(&sub), command, utc(2026, 4, 16)).expect("ok");
    let (paused, _) = step(Some(&sub), SubscriptionCommand::Pause, utc(2026, 4, 17)).expect("ok");
    let (paused, events) = renew(&paused, utc(2026, 5, 1));
    assert!(renewed(&events).invoice_lines.is_empty());
    assert_eq!(paused.pending_items.len(), 2);
    let (active, _) =
        step(Some(&paused), SubscriptionCommand::Resume, utc(2026, 5, 2)).expect("ok");
    let (_, events) = renew(&active, utc(2026, 6, 1));
    assert_eq!(amounts(&renewed(&events).invoice_lines), [3000, -500, 1500]);
}

const START: i64 = 1_775_001_600; // 2026-04-01T00:00:00Z
const DAY: i64 = 86_400;

proptest! {
    /// credit + charge is (new − old) × remaining / total within one minor unit per line, for
    /// any change instant in the period and any two prices (and quantities).
    #[test]
    fn prorations_net_to_the_price_difference(
        old in 0..=10_000_000_i64,
        new in 0..=10_000_000_i64,
        old_qty in 1..=100_u32,
        new_qty in 1..=100_u32,
        elapsed in 0..30 * DAY,
    ) {
        let start = DateTime::from_timestamp(START, 0).expect("in range");
        let sub = create(new_sub(plan("Old", old, UsageType::Licensed), old_qty), start);
        prop_assert_eq!(sub.current_period_end - start, TimeDelta::days(30));
        let now = start + TimeDelta::seconds(elapsed);
        let command = change(Some(plan("New", new, UsageType::Licensed)), Some(new_qty), ProrationBehavior::CreateProrations);
        let events = Subscription::decide(Some(&sub), command, now).expect("ok");
        let items = match events.as_slice() {
            [SubscriptionEvent::Updated(u)] => u.proration_items.clone(),
            [] => vec![],
            other => panic!("{other:?}"),
        };
        let amounts = amounts(&items);
        let (credit, charge) = match amounts.as_slice() {
            [c, ch] => (*c, *ch),
            [] => (0, 0),
            other => panic!("{other:?}"),
        };
        let total = i128::from(30 * DAY);
        let remaining = total - i128::from(elapsed);
        let old_total = i128::from(old) * i128::from(old_qty);
        let new_total = i128::from(new) * i128::from(new_qty);
        prop_assert!((i128::from(credit) * total + old_total * remaining).abs() * 2 <= total);
        prop_assert!((i128::from(charge) * total - new_total * remaining).abs() * 2 <= total);
        let net = i128::from(credit) + i128::from(charge);
        prop_assert!((net * total - (new_total - old_total) * remaining).abs() <= 2 * total);
    }
}
