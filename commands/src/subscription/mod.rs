//! A subscription: a customer billed for a plan every period, with Stripe Billing's semantics.
//!
//! `decide` is pure: the caller loads the plan and passes a [`PlanSnapshot`] (price in the
//! subscription's currency, interval, usage type); nothing here reads a store or a clock.
//!
//! # Periods
//!
//! Periods are counted from the billing-cycle [`Subscription::anchor`]: period `k` starts at
//! [`period_boundary`](crate::pricing::period_boundary)`(anchor, interval, k)`, computed from the
//! anchor each time (anchor Jan 31 → Feb 28/29 → Mar 31 → Apr 30). The first period may be
//! shorter: `[created, anchor)` when a future `billing_cycle_anchor` is given (prorated, as in
//! Stripe), or `[created, trial_end)` during a trial (the anchor is then the trial end).
//!
//! # What is billed, and when
//!
//! Events carry the [`BillingItem`]s to invoice; the caller drafts the invoice from them:
//! - `SubscriptionCreated`: the first period in advance (licensed, no trial), prorated when it
//!   ends at a future anchor (also given as `first_period_amount`);
//! - `SubscriptionRenewed`: licensed plans the new period in advance (quantity × price),
//!   metered plans the usage of the period that ended (in arrears), plus the pending proration
//!   items, which are then cleared;
//! - `SubscriptionUpdated`: proration items, either kept pending (`create_prorations`) or to be
//!   invoiced at once (`always_invoice`, `invoice_now: true`);
//! - `SubscriptionCanceled`: `final_lines`, the metered usage of the unfinished period and the
//!   pending items (no refund of unused licensed time, Stripe's default).
//!
//! Usage recorded during a trial is not billed (Stripe prices trial usage at zero).
//!
//! # Paused collection
//!
//! A paused subscription (status `paused`, like Stripe's `pause_collection` with behavior
//! `void`) keeps renewing, so its periods stay on the anchor's calendar, but a renewal bills
//! nothing (`invoice_lines` empty): the usage of a paused period is dropped, and pending
//! proration items are kept for the first renewal after `Resume`.
//!
//! # Scheduling and dunning
//!
//! [`next_due`] tells the billing clock what to run next: a [`SubscriptionCommand::Renew`] at
//! the current period end (which also ends a trial, or cancels at period end). It is idempotent
//! per `period_start`. Dunning retries are scheduled by the invoice side; this aggregate only
//! records their outcomes (`PaymentFailed`, `PaymentSucceeded`, `DunningExhausted`).

mod billing;
mod command;
mod decide;
mod error;
mod events;
mod evolve;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_billing;
#[cfg(test)]
mod tests_lifecycle;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use ledger::ids::{CustomerId, InvoiceId, PlanId, SubscriptionId};
use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::plan::UsageType;
use crate::pricing::Interval;

pub use billing::BillingItem;
pub use command::{
    DunningOutcome, NewSubscription, ProrationBehavior, SubscriptionCommand, UsageAction,
};
pub use error::SubscriptionError;
pub use events::{
    CancelReason, SubscriptionCancelScheduled, SubscriptionCanceled, SubscriptionCreated,
    SubscriptionEvent, SubscriptionMarkedUnpaid, SubscriptionPastDue, SubscriptionPaused,
    SubscriptionPaymentRecovered, SubscriptionRenewed, SubscriptionResumed, SubscriptionTrialEnded,
    SubscriptionUpdated, UsageRecorded,
};

/// Most units of a licensed subscription.
pub const QUANTITY_MAX: u32 = 10_000;
/// Longest free trial, in days (Stripe's limit, as for plans).
pub const TRIAL_MAX_DAYS: i64 = 730;

/// The plan as the subscription bills it, loaded by the caller when the command is made.
///
/// JSON: `{"plan_id": "plan_…", "name": "Gold", "price": {"amount": 1000, "currency": "usd"},
/// "interval": "month", "interval_count": 1, "usage_type": "licensed"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSnapshot {
    /// The plan.
    pub plan_id: PlanId,
    /// The plan's name, for line descriptions ("1 × Gold (at 10.00 usd / month)").
    pub name: String,
    /// Price per unit (licensed) or per unit of usage (metered), in the subscription currency.
    pub price: Money,
    /// How long one period is.
    #[serde(flatten)]
    pub interval: Interval,
    /// Billed in advance per quantity, or in arrears per usage.
    pub usage_type: UsageType,
    /// Graduated tiers (then `price` is 0); empty for a flat price per unit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<crate::pricing::Tier>,
}

impl PlanSnapshot {
    /// What `quantity` units cost for one whole period: by the tiers, or `price × quantity`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`](ledger::money::MoneyError::Overflow).
    pub fn amount_for(&self, quantity: u64) -> Result<Money, ledger::money::MoneyError> {
        if self.tiers.is_empty() {
            let q = i64::try_from(quantity).map_err(|_| ledger::money::MoneyError::Overflow)?;
            return self.price.checked_mul(q);
        }
        crate::pricing::tiers::total(&self.tiers, quantity, self.price.currency())
    }
}

/// Where a subscription stands (Stripe's statuses; JSON snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// In a free trial until `trial_end`.
    Trialing,
    /// Billed every period, payments up to date.
    Active,
    /// A payment failed; dunning is retrying it. Renewals continue.
    PastDue,
    /// Ended; nothing more is billed.
    Canceled,
    /// Dunning gave up without canceling: no more renewals until a payment succeeds.
    Unpaid,
    /// Collection paused: periods advance, nothing is billed.
    Paused,
}

impl SubscriptionStatus {
    /// The snake_case name, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Paused => "paused",
        }
    }
}

/// The folded state of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The subscription.
    pub id: SubscriptionId,
    /// Who pays.
    pub customer_id: CustomerId,
    /// The plan billed now.
    pub plan: PlanSnapshot,
    /// Units billed per period (always 1 for metered plans).
    pub quantity: u32,
    /// Where it stands.
    pub status: SubscriptionStatus,
    /// Billing-cycle anchor: period boundaries are `period_boundary(anchor, interval, k)`.
    pub anchor: DateTime<Utc>,
    /// Start of the current period.
    pub current_period_start: DateTime<Utc>,
    /// End of the current period (exclusive): when the next renewal is due.
    pub current_period_end: DateTime<Utc>,
    /// End of the free trial, if there was one.
    pub trial_end: Option<DateTime<Utc>>,
    /// Cancels instead of renewing at the current period end.
    pub cancel_at_period_end: bool,
    /// When it was canceled.
    pub canceled_at: Option<DateTime<Utc>>,
    /// Proration items waiting for the next billed renewal.
    pub pending_items: Vec<BillingItem>,
    /// Metered usage recorded in the current period.
    pub usage_in_period: i64,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// `(invoice, attempt)` payment failures seen, so a repeated report changes nothing.
    pub failed_attempts: BTreeSet<(InvoiceId, u32)>,
    /// The last invoice a period, change or cancellation of this subscription asked for.
    pub latest_invoice: Option<InvoiceId>,
    /// Events folded so far: the stream version of the last one.
    pub version: i64,
}

/// The invoice of the period starting at `start` (its first period or a renewal).
#[must_use]
pub fn invoice_for_period(sub: SubscriptionId, start: DateTime<Utc>) -> InvoiceId {
    InvoiceId::derived(&format!("{sub}:period:{}", start.timestamp()))
}

/// The invoice of a change invoiced at once, or of the final period of a cancellation: the
/// event's stream version names it, so two changes at the same instant get two invoices.
#[must_use]
pub fn invoice_for_change(sub: SubscriptionId, version: i64) -> InvoiceId {
    InvoiceId::derived(&format!("{sub}:change:{version}"))
}

impl Subscription {
    /// The currency everything of this subscription is billed in.
    #[must_use]
    pub fn currency(&self) -> Currency {
        self.plan.price.currency()
    }

    /// The current period `[start, end)`.
    #[must_use]
    pub fn current_period(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.current_period_start, self.current_period_end)
    }
}

/// What the billing clock runs next for a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The period starting at `period_start` begins: renew (or cancel at period end).
    Renewal {
        /// The new period's start (the current period's end).
        period_start: DateTime<Utc>,
    },
    /// The trial ends at `period_start`: the same renewal, which also ends the trial.
    TrialEnd {
        /// The trial end, which starts the first paid period.
        period_start: DateTime<Utc>,
    },
}

impl Due {
    /// The idempotent command to run: [`SubscriptionCommand::Renew`] for the period.
    #[must_use]
    pub fn command(&self) -> SubscriptionCommand {
        match *self {
            Due::Renewal { period_start } | Due::TrialEnd { period_start } => {
                SubscriptionCommand::Renew { period_start }
            }
        }
    }
}

/// When the scheduler must act next on `subscription`, and what to run; `None` when nothing is
/// ever due again (canceled) or until a payment succeeds (unpaid). Dunning retries are not
/// here: the invoice side schedules them.
#[must_use]
pub fn next_due(subscription: &Subscription) -> Option<(DateTime<Utc>, Due)> {
    match subscription.status {
        SubscriptionStatus::Canceled | SubscriptionStatus::Unpaid => None,
        SubscriptionStatus::Trialing => {
            let period_start = subscription.current_period_end;
            Some((period_start, Due::TrialEnd { period_start }))
        }
        SubscriptionStatus::Active | SubscriptionStatus::PastDue | SubscriptionStatus::Paused => {
            let period_start = subscription.current_period_end;
            Some((period_start, Due::Renewal { period_start }))
        }
    }
}

impl Aggregate for Subscription {
    type Event = SubscriptionEvent;
    type Command = SubscriptionCommand;
    type Error = SubscriptionError;
    const CATEGORY: &'static str = "subscription";

    fn decide(
        state: Option<&Subscription>,
        command: SubscriptionCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        decide::decide(state, command, now)
    }

    fn evolve(
        state: Option<Subscription>,
        event: &SubscriptionEvent,
        at: DateTime<Utc>,
    ) -> Option<Subscription> {
        evolve::evolve(state, event, at)
    }
}
