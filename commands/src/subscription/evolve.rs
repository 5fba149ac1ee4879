//! `evolve`: the state after one more event. Events were checked by `decide`, so nothing here
//! can fail; an event that does not fit the state leaves it unchanged.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::events::SubscriptionEvent as E;
use super::{
    Subscription, SubscriptionStatus as Status, UsageAction, invoice_for_change, invoice_for_period,
};

pub(super) fn evolve(
    state: Option<Subscription>,
    event: &E,
    at: DateTime<Utc>,
) -> Option<Subscription> {
    let mut sub = match (state, event) {
        (None, E::Created(e)) => {
            return Some(Subscription {
                id: e.subscription_id,
                customer_id: e.customer_id,
                plan: e.plan.clone(),
                quantity: e.quantity,
                status: e.status,
                anchor: e.anchor,
                current_period_start: e.current_period_start,
                current_period_end: e.current_period_end,
                trial_end: e.trial_end,
                cancel_at_period_end: false,
                canceled_at: None,
                pending_items: Vec::new(),
                usage_in_period: 0,
                created: at,
                failed_attempts: BTreeSet::new(),
                version: 1,
                latest_invoice: (!e.invoice_lines.is_empty())
                    .then(|| invoice_for_period(e.subscription_id, e.current_period_start)),
            });
        }
        (Some(sub), _) => sub,
        (None, _) => return None,
    };
    sub.version = sub.version.saturating_add(1);
    match event {
        E::Created(_) => {}
        E::Renewed(e) => {
            sub.current_period_start = e.period_start;
            sub.current_period_end = e.period_end;
            sub.usage_in_period = 0;
            if !e.invoice_lines.is_empty() {
                sub.latest_invoice = Some(invoice_for_period(sub.id, e.period_start));
            }
            // A paused renewal bills nothing: pending items wait for a billed one.
            if sub.status != Status::Paused {
                sub.pending_items.clear();
            }
        }
        E::TrialEnded(_) => {
            if sub.status == Status::Trialing {
                sub.status = Status::Active;
            }
        }
        E::Updated(e) => {
            sub.plan = e.plan.clone();
            sub.quantity = e.quantity;
            if !e.invoice_now {
                sub.pending_items.extend(e.proration_items.iter().cloned());
            } else if !e.proration_items.is_empty() {
                sub.latest_invoice = Some(invoice_for_change(sub.id, sub.version));
            }
        }
        E::UsageRecorded(e) => {
            sub.usage_in_period = match e.action {
                UsageAction::Increment => sub.usage_in_period.saturating_add(e.quantity),
                UsageAction::Set => e.quantity,
            };
        }
        E::Paused(_) => sub.status = Status::Paused,
        E::Resumed(_) => {
            if sub.status == Status::Paused {
                sub.status = Status::Active;
            }
        }
        E::CancelScheduled(_) => sub.cancel_at_period_end = true,
        E::Canceled(e) => {
            sub.status = Status::Canceled;
            sub.canceled_at = Some(e.at);
            if !e.final_lines.is_empty() {
                sub.latest_invoice = Some(invoice_for_change(sub.id, sub.version));
            }
            sub.cancel_at_period_end = false;
            sub.pending_items.clear();
            sub.usage_in_period = 0;
        }
        E::PastDue(e) => {
            sub.failed_attempts.insert((e.invoice_id, e.attempt));
            // Unpaid stays unpaid; a paused subscription stays paused (its collection is off).
            if matches!(
                sub.status,
                Status::Active | Status::Trialing | Status::PastDue
            ) {
                sub.status = Status::PastDue;
            }
        }
        E::PaymentRecovered(_) => sub.status = Status::Active,
        E::MarkedUnpaid(_) => sub.status = Status::Unpaid,
    }
    Some(sub)
}
