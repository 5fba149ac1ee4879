//! The lines a subscription bills: period lines, metered usage, proration items.

use chrono::{DateTime, Utc};
use ledger::money::{Money, MoneyError};
use serde::{Deserialize, Serialize};

use super::{PlanSnapshot, Subscription, SubscriptionError, SubscriptionStatus};
use crate::plan::UsageType;
use crate::pricing::{IntervalUnit, prorate_change};

/// One line to invoice, in the subscription currency (Stripe's invoice item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingItem {
    /// What it is, e.g. "2 × Gold (at 10.00 usd / month)"; no personal data.
    pub description: String,
    /// Amount per unit in minor units; negative for a credit.
    pub unit_amount: i64,
    /// Units (seats, or usage).
    pub quantity: i64,
    /// Whether this is a proration (a mid-period change).
    pub proration: bool,
    /// Start of the time billed.
    pub period_start: DateTime<Utc>,
    /// End of the time billed (exclusive).
    pub period_end: DateTime<Utc>,
}

impl BillingItem {
    /// `unit_amount × quantity` in minor units.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if it does not fit in an `i64`.
    pub fn amount(&self) -> Result<i64, MoneyError> {
        self.unit_amount
            .checked_mul(self.quantity)
            .ok_or(MoneyError::Overflow)
    }
}

/// "month", "3 months".
fn interval_text(plan: &PlanSnapshot) -> String {
    let unit = plan.interval.unit();
    match plan.interval.count() {
        1 => unit.as_str().to_owned(),
        n => format!("{n} {}s", unit.as_str()),
    }
}

/// "Gold" or "3 × Gold".
fn units_of(plan: &PlanSnapshot, quantity: u32) -> String {
    match quantity {
        1 => plan.name.clone(),
        q => format!("{q} × {}", plan.name),
    }
}

/// "15 Jan 2026".
fn day(at: DateTime<Utc>) -> String {
    at.format("%-d %b %Y").to_string()
}

/// The lines for a whole licensed period in advance: `quantity × price`, or one line per tier
/// reached (and one per flat fee).
pub(super) fn period_line(
    plan: &PlanSnapshot,
    quantity: u32,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<BillingItem>, SubscriptionError> {
    if !plan.tiers.is_empty() {
        return tier_lines(plan, u64::from(quantity), period);
    }
    let (start, end) = period;
    let line = BillingItem {
        description: format!(
            "{quantity} × {} (at {} / {})",
            plan.name,
            plan.price,
            interval_text(plan)
        ),
        unit_amount: plan.price.amount_minor(),
        quantity: i64::from(quantity),
        proration: false,
        period_start: start,
        period_end: end,
    };
    line.amount()?;
    Ok(vec![line])
}

/// One line per tier that `quantity` reaches, plus one per flat fee.
fn tier_lines(
    plan: &PlanSnapshot,
    quantity: u64,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<BillingItem>, SubscriptionError> {
    plan.amount_for(quantity)?;
    let currency = plan.price.currency();
    let mut lines = vec![];
    for t in crate::pricing::tiers::spread(&plan.tiers, quantity) {
        let range = match t.last {
            Some(last) => format!("{} – {}", t.first, last),
            None => format!("{} and above", t.first),
        };
        lines.push(BillingItem {
            description: format!(
                "{} × {} (tier {range}, at {} per unit)",
                t.quantity,
                plan.name,
                Money::new(t.unit_amount, currency)
            ),
            unit_amount: t.unit_amount,
            quantity: i64::try_from(t.quantity).map_err(|_| MoneyError::Overflow)?,
            proration: false,
            period_start: start,
            period_end: end,
        });
        if t.flat_amount > 0 {
            lines.push(BillingItem {
                description: format!("{} flat fee (tier {range})", plan.name),
                unit_amount: t.flat_amount,
                quantity: 1,
                proration: false,
                period_start: start,
                period_end: end,
            });
        }
    }
    Ok(lines)
}

/// The line for a first period `[now, anchor)` shorter than a whole interval: the remaining
/// time of the full period ending at the anchor, `quantity × price × (anchor − now) / length`.
pub(super) fn first_period_line(
    plan: &PlanSnapshot,
    quantity: u32,
    now: DateTime<Utc>,
    anchor: DateTime<Utc>,
) -> Result<BillingItem, SubscriptionError> {
    let full_start = previous_boundary(anchor, plan)?;
    let total = plan.amount_for(u64::from(quantity))?;
    let lines = prorate_change(
        Money::zero(total.currency()),
        total,
        (full_start, anchor),
        now,
    )?;
    Ok(BillingItem {
        description: format!(
            "Remaining time on {} from {} to {}",
            units_of(plan, quantity),
            day(now),
            day(anchor)
        ),
        unit_amount: lines.charge.amount_minor(),
        quantity: 1,
        proration: true,
        period_start: now,
        period_end: anchor,
    })
}

/// The period a change is prorated over: the current one, or — in a first period shortened to
/// the billing-cycle anchor — the whole interval ending at the anchor, as that first period was
/// billed (so a change never credits more than was charged).
fn proration_period(
    sub: &Subscription,
) -> Result<(DateTime<Utc>, DateTime<Utc>), SubscriptionError> {
    let (start, end) = sub.current_period();
    if end == sub.anchor {
        let full_start = previous_boundary(end, &sub.plan)?;
        if full_start < start {
            return Ok((full_start, end));
        }
    }
    Ok((start, end))
}

/// One interval before `anchor` (months clamped to the end of the month).
fn previous_boundary(
    anchor: DateTime<Utc>,
    plan: &PlanSnapshot,
) -> Result<DateTime<Utc>, SubscriptionError> {
    let count = plan.interval.count();
    let earlier = match plan.interval.unit() {
        IntervalUnit::Day => anchor.checked_sub_signed(chrono::TimeDelta::days(i64::from(count))),
        IntervalUnit::Week => {
            anchor.checked_sub_signed(chrono::TimeDelta::days(i64::from(count.saturating_mul(7))))
        }
        IntervalUnit::Month => anchor.checked_sub_months(chrono::Months::new(count)),
        IntervalUnit::Year => {
            anchor.checked_sub_months(chrono::Months::new(count.saturating_mul(12)))
        }
    };
    earlier.ok_or(SubscriptionError::PeriodOutOfRange)
}

/// The metered usage of `period`, in arrears: `usage × price`, or by the tiers.
pub(super) fn usage_line(
    plan: &PlanSnapshot,
    usage: i64,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<BillingItem>, SubscriptionError> {
    if !plan.tiers.is_empty() {
        let units = u64::try_from(usage).map_err(|_| SubscriptionError::UsageInvalid)?;
        return tier_lines(plan, units, period);
    }
    let (start, end) = period;
    let line = BillingItem {
        description: format!("{usage} × {} usage (at {} per unit)", plan.name, plan.price),
        unit_amount: plan.price.amount_minor(),
        quantity: usage,
        proration: false,
        period_start: start,
        period_end: end,
    };
    line.amount()?;
    Ok(vec![line])
}

/// What ending the metered part of the current period at `end` bills: the usage so far
/// (metered plans, not in a trial nor paused) and the pending items.
pub(super) fn closing_lines(
    sub: &Subscription,
    end: DateTime<Utc>,
) -> Result<Vec<BillingItem>, SubscriptionError> {
    match sub.status {
        SubscriptionStatus::Trialing | SubscriptionStatus::Paused => return Ok(vec![]),
        _ => {}
    }
    let mut lines = Vec::new();
    // No usage, no line (an invoice of nothing is not drafted).
    if sub.plan.usage_type == UsageType::Metered && sub.usage_in_period != 0 {
        lines.extend(usage_line(
            &sub.plan,
            sub.usage_in_period,
            (sub.current_period_start, end),
        )?);
    }
    lines.extend(sub.pending_items.iter().cloned());
    Ok(lines)
}

/// The two proration items of a change at `now` from the subscription's plan and quantity to
/// `plan` × `quantity`: credit for the unused time of the old, charge for the remaining time
/// of the new (each `price × quantity`, prorated by the second).
pub(super) fn proration_items(
    sub: &Subscription,
    plan: &PlanSnapshot,
    quantity: u32,
    now: DateTime<Utc>,
) -> Result<Vec<BillingItem>, SubscriptionError> {
    let old = sub.plan.amount_for(u64::from(sub.quantity))?;
    let new = plan.amount_for(u64::from(quantity))?;
    let lines = prorate_change(old, new, proration_period(sub)?, now)?;
    let item = |description: String, amount: Money| BillingItem {
        description,
        unit_amount: amount.amount_minor(),
        quantity: 1,
        proration: true,
        period_start: now,
        period_end: sub.current_period_end,
    };
    Ok(vec![
        item(
            format!(
                "Unused time on {} after {}",
                units_of(&sub.plan, sub.quantity),
                day(now)
            ),
            lines.credit,
        ),
        item(
            format!(
                "Remaining time on {} after {}",
                units_of(plan, quantity),
                day(now)
            ),
            lines.charge,
        ),
    ])
}
