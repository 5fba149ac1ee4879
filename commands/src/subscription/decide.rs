//! `decide`: what a command produces from the current state. Pure: no I/O, no clock.

use chrono::{DateTime, TimeDelta, Utc};

use super::billing::{closing_lines, first_period_line, period_line, proration_items};
use super::command::{DunningOutcome, NewSubscription, ProrationBehavior, SubscriptionCommand};
use super::events::*;
use super::{PlanSnapshot, QUANTITY_MAX, Subscription, SubscriptionError, TRIAL_MAX_DAYS};
use super::{SubscriptionStatus as Status, UsageAction};
use crate::plan::UsageType;
use crate::pricing::{period_boundary, period_containing};

type Decided = Result<Vec<SubscriptionEvent>, SubscriptionError>;

pub(super) fn decide(
    state: Option<&Subscription>,
    command: SubscriptionCommand,
    now: DateTime<Utc>,
) -> Decided {
    let Some(sub) = state else {
        return match command {
            SubscriptionCommand::Create(new) => create(new, now),
            _ => Err(SubscriptionError::NotFound),
        };
    };
    match command {
        SubscriptionCommand::Create(_) => Err(SubscriptionError::AlreadyExists(sub.id)),
        SubscriptionCommand::Renew { period_start } => renew(sub, period_start, now),
        SubscriptionCommand::Change {
            plan,
            quantity,
            proration_behavior,
        } => change(sub, plan, quantity, proration_behavior, now),
        SubscriptionCommand::RecordUsage {
            quantity,
            timestamp,
            action,
        } => record_usage(sub, quantity, timestamp, action, now),
        SubscriptionCommand::Pause => pause(sub),
        SubscriptionCommand::Resume => resume(sub),
        SubscriptionCommand::Cancel { at_period_end } => cancel(sub, at_period_end, now),
        SubscriptionCommand::PaymentFailed {
            invoice_id,
            attempt,
        } => {
            let seen = sub.failed_attempts.contains(&(invoice_id, attempt));
            if sub.status == Status::Canceled || seen {
                return Ok(vec![]);
            }
            Ok(vec![SubscriptionEvent::PastDue(SubscriptionPastDue {
                subscription_id: sub.id,
                invoice_id,
                attempt,
            })])
        }
        SubscriptionCommand::PaymentSucceeded { invoice_id } => match sub.status {
            Status::PastDue | Status::Unpaid => Ok(vec![SubscriptionEvent::PaymentRecovered(
                SubscriptionPaymentRecovered {
                    subscription_id: sub.id,
                    invoice_id,
                },
            )]),
            _ => Ok(vec![]),
        },
        SubscriptionCommand::DunningExhausted {
            invoice_id,
            outcome,
        } => dunning_exhausted(sub, invoice_id, outcome, now),
    }
}

fn check_quantity(plan: &PlanSnapshot, quantity: u32) -> Result<(), SubscriptionError> {
    let ok = match plan.usage_type {
        UsageType::Licensed => (1..=QUANTITY_MAX).contains(&quantity),
        UsageType::Metered => quantity == 1,
    };
    if !ok {
        return Err(SubscriptionError::QuantityInvalid);
    }
    if plan.price.is_negative() {
        return Err(SubscriptionError::PriceInvalid);
    }
    Ok(())
}

fn boundary(
    anchor: DateTime<Utc>,
    plan: &PlanSnapshot,
    n: u32,
) -> Result<DateTime<Utc>, SubscriptionError> {
    period_boundary(anchor, plan.interval, n).ok_or(SubscriptionError::PeriodOutOfRange)
}

fn create(new: NewSubscription, now: DateTime<Utc>) -> Decided {
    check_quantity(&new.plan, new.quantity)?;
    let licensed = new.plan.usage_type == UsageType::Licensed;
    let mut first_period_amount = None;
    let mut invoice_lines = Vec::new();
    let (status, anchor, end) = match (new.trial_end, new.billing_cycle_anchor) {
        (Some(_), Some(_)) => return Err(SubscriptionError::AnchorInvalid),
        (Some(trial_end), None) => {
            let latest = now
                .checked_add_signed(TimeDelta::days(TRIAL_MAX_DAYS))
                .ok_or(SubscriptionError::PeriodOutOfRange)?;
            if trial_end <= now || trial_end > latest {
                return Err(SubscriptionError::TrialInvalid);
            }
            (Status::Trialing, trial_end, trial_end)
        }
        (None, Some(anchor)) if anchor > now => {
            if anchor >= boundary(now, &new.plan, 1)? {
                return Err(SubscriptionError::AnchorInvalid);
            }
            if licensed {
                let line = first_period_line(&new.plan, new.quantity, now, anchor)?;
                first_period_amount = Some(line.amount()?);
                invoice_lines.push(line);
            }
            (Status::Active, anchor, anchor)
        }
        (None, Some(anchor)) if anchor < now => return Err(SubscriptionError::AnchorInvalid),
        (None, _) => {
            let end = boundary(now, &new.plan, 1)?;
            if licensed {
                invoice_lines.extend(period_line(&new.plan, new.quantity, (now, end))?);
            }
            (Status::Active, now, end)
        }
    };
    Ok(vec![SubscriptionEvent::Created(SubscriptionCreated {
        subscription_id: new.subscription_id,
        customer_id: new.customer_id,
        plan: new.plan,
        quantity: new.quantity,
        status,
        anchor,
        current_period_start: now,
        current_period_end: end,
        trial_end: new.trial_end,
        first_period_amount,
        invoice_lines,
    })])
}

fn renew(sub: &Subscription, period_start: DateTime<Utc>, now: DateTime<Utc>) -> Decided {
    // Nothing renews any more once canceled or unpaid (see `next_due`); a repeated renewal of
    // the current period changes nothing.
    if matches!(sub.status, Status::Canceled | Status::Unpaid)
        || period_start == sub.current_period_start
    {
        return Ok(vec![]);
    }
    if period_start != sub.current_period_end || now < period_start {
        return Err(SubscriptionError::NotDue {
            requested: period_start,
            next: sub.current_period_end,
            now,
        });
    }
    let mut events = Vec::new();
    if sub.cancel_at_period_end {
        events.push(SubscriptionEvent::Canceled(SubscriptionCanceled {
            subscription_id: sub.id,
            at: period_start,
            reason: CancelReason::PeriodEnd,
            final_lines: closing_lines(sub, period_start)?,
        }));
        return Ok(events);
    }
    let (start, end) = period_containing(sub.anchor, sub.plan.interval, period_start)
        .ok_or(SubscriptionError::PeriodOutOfRange)?;
    if start != period_start {
        // The current period end is always a boundary of the anchor's calendar.
        return Err(SubscriptionError::PeriodOutOfRange);
    }
    let mut invoice_lines = Vec::new();
    match sub.status {
        Status::Paused => {}
        Status::Trialing => {
            events.push(SubscriptionEvent::TrialEnded(SubscriptionTrialEnded {
                subscription_id: sub.id,
                trial_end: period_start,
            }));
            if sub.plan.usage_type == UsageType::Licensed {
                invoice_lines.extend(period_line(&sub.plan, sub.quantity, (start, end))?);
            }
            invoice_lines.extend(sub.pending_items.iter().cloned());
        }
        _ => {
            // Metered: usage of the period that ended, in arrears; licensed: the new period.
            invoice_lines = closing_lines(sub, period_start)?;
            if sub.plan.usage_type == UsageType::Licensed {
                let period = period_line(&sub.plan, sub.quantity, (start, end))?;
                invoice_lines.splice(0..0, period);
            }
        }
    }
    events.push(SubscriptionEvent::Renewed(SubscriptionRenewed {
        subscription_id: sub.id,
        period_start: start,
        period_end: end,
        invoice_lines,
    }));
    Ok(events)
}

fn change(
    sub: &Subscription,
    plan: Option<PlanSnapshot>,
    quantity: Option<u32>,
    behavior: ProrationBehavior,
    now: DateTime<Utc>,
) -> Decided {
    if sub.status == Status::Canceled {
        return Err(SubscriptionError::Canceled);
    }
    let plan = plan.unwrap_or_else(|| sub.plan.clone());
    let quantity = quantity.unwrap_or(sub.quantity);
    if plan.interval != sub.plan.interval {
        return Err(SubscriptionError::IntervalMismatch {
            current: sub.plan.interval,
            new: plan.interval,
        });
    }
    if plan.price.currency() != sub.currency() {
        return Err(SubscriptionError::CurrencyMismatch {
            current: sub.currency(),
            new: plan.price.currency(),
        });
    }
    if plan.usage_type != sub.plan.usage_type {
        return Err(SubscriptionError::UsageTypeMismatch);
    }
    check_quantity(&plan, quantity)?;
    if plan == sub.plan && quantity == sub.quantity {
        return Ok(vec![]);
    }
    if now >= sub.current_period_end {
        return Err(SubscriptionError::PeriodEnded {
            period_end: sub.current_period_end,
        });
    }
    // Stripe prorates neither trials nor metered prices (usage is billed at the price in force
    // at the period end).
    let prorate = behavior != ProrationBehavior::None
        && sub.status != Status::Trialing
        && plan.usage_type == UsageType::Licensed;
    let proration_items = if prorate {
        proration_items(sub, &plan, quantity, now)?
    } else {
        vec![]
    };
    let invoice_now = behavior == ProrationBehavior::AlwaysInvoice && !proration_items.is_empty();
    Ok(vec![SubscriptionEvent::Updated(SubscriptionUpdated {
        subscription_id: sub.id,
        plan,
        quantity,
        proration_behavior: behavior,
        proration_items,
        invoice_now,
    })])
}

fn record_usage(
    sub: &Subscription,
    quantity: i64,
    timestamp: DateTime<Utc>,
    action: UsageAction,
    now: DateTime<Utc>,
) -> Decided {
    if sub.status == Status::Canceled {
        return Err(SubscriptionError::Canceled);
    }
    if sub.plan.usage_type != UsageType::Metered {
        return Err(SubscriptionError::NotMetered);
    }
    if quantity < 0 {
        return Err(SubscriptionError::UsageInvalid);
    }
    let (start, end) = sub.current_period();
    if timestamp < start || timestamp >= end || timestamp > now {
        return Err(SubscriptionError::UsageOutsidePeriod {
            at: timestamp,
            start,
            end,
        });
    }
    let total = match action {
        UsageAction::Increment => sub.usage_in_period.checked_add(quantity),
        UsageAction::Set => Some(quantity),
    };
    // The period's usage must stay billable: within an invoice line's quantity, and its price
    // (flat or by the tiers) far enough from overflow to leave room for tax.
    let total = total.ok_or(ledger::money::MoneyError::Overflow)?;
    if total > crate::invoice::QUANTITY_MAX {
        return Err(SubscriptionError::UsageInvalid);
    }
    let units = u64::try_from(total).map_err(|_| SubscriptionError::UsageInvalid)?;
    let price = sub.plan.amount_for(units)?;
    if price.amount_minor() > i64::MAX / 4 {
        return Err(ledger::money::MoneyError::Overflow.into());
    }
    Ok(vec![SubscriptionEvent::UsageRecorded(UsageRecorded {
        subscription_id: sub.id,
        quantity,
        action,
        timestamp,
    })])
}

fn pause(sub: &Subscription) -> Decided {
    match sub.status {
        Status::Paused => Ok(vec![]),
        Status::Active => Ok(vec![SubscriptionEvent::Paused(SubscriptionPaused {
            subscription_id: sub.id,
        })]),
        Status::Canceled => Err(SubscriptionError::Canceled),
        status => Err(SubscriptionError::StatusInvalid {
            action: "pause",
            status,
        }),
    }
}

fn resume(sub: &Subscription) -> Decided {
    match sub.status {
        Status::Paused => Ok(vec![SubscriptionEvent::Resumed(SubscriptionResumed {
            subscription_id: sub.id,
        })]),
        Status::Canceled => Err(SubscriptionError::Canceled),
        _ => Ok(vec![]),
    }
}

fn cancel(sub: &Subscription, at_period_end: bool, now: DateTime<Utc>) -> Decided {
    if sub.status == Status::Canceled || (at_period_end && sub.cancel_at_period_end) {
        return Ok(vec![]);
    }
    if at_period_end {
        return Ok(vec![SubscriptionEvent::CancelScheduled(
            SubscriptionCancelScheduled {
                subscription_id: sub.id,
                cancel_at: sub.current_period_end,
            },
        )]);
    }
    canceled(sub, now, CancelReason::Requested)
}

fn canceled(sub: &Subscription, now: DateTime<Utc>, reason: CancelReason) -> Decided {
    // Usage is billed up to now, or up to the period end if the renewal is overdue.
    let end = now.min(sub.current_period_end);
    Ok(vec![SubscriptionEvent::Canceled(SubscriptionCanceled {
        subscription_id: sub.id,
        at: now,
        reason,
        final_lines: closing_lines(sub, end)?,
    })])
}

fn dunning_exhausted(
    sub: &Subscription,
    invoice_id: ledger::ids::InvoiceId,
    outcome: DunningOutcome,
    now: DateTime<Utc>,
) -> Decided {
    // A payment that recovered in the meantime (or a canceled subscription) makes the outcome
    // stale: nothing to do.
    match (sub.status, outcome) {
        (Status::PastDue | Status::Unpaid, DunningOutcome::Cancel) => {
            canceled(sub, now, CancelReason::PaymentFailed)
        }
        (Status::PastDue, DunningOutcome::MarkUnpaid) => Ok(vec![SubscriptionEvent::MarkedUnpaid(
            SubscriptionMarkedUnpaid {
                subscription_id: sub.id,
                invoice_id,
            },
        )]),
        _ => Ok(vec![]),
    }
}
