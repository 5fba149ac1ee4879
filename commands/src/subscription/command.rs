//! The commands a subscription takes (typed by the caller, checked by `decide`).

use chrono::{DateTime, Utc};
use ledger::ids::{CustomerId, InvoiceId, SubscriptionId};
use serde::{Deserialize, Serialize};

use super::PlanSnapshot;

/// A subscription to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// The new subscription's id.
    pub subscription_id: SubscriptionId,
    /// Who pays.
    pub customer_id: CustomerId,
    /// The plan, as loaded by the caller.
    pub plan: PlanSnapshot,
    /// Units: 1 to [`QUANTITY_MAX`](super::QUANTITY_MAX) for licensed plans, exactly 1 for
    /// metered ones.
    pub quantity: u32,
    /// End of a free trial: after now, at most [`TRIAL_MAX_DAYS`](super::TRIAL_MAX_DAYS) ahead.
    pub trial_end: Option<DateTime<Utc>>,
    /// A future billing-cycle anchor (≥ now, < now + one interval; not with a trial): the
    /// first period `[now, anchor)` is prorated.
    pub billing_cycle_anchor: Option<DateTime<Utc>>,
}

/// How a plan or quantity change is prorated (Stripe's `proration_behavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProrationBehavior {
    /// Proration items wait for the next renewal's invoice.
    CreateProrations,
    /// No proration: the new price applies from the next renewal.
    None,
    /// Proration items are invoiced (and charged) at once.
    AlwaysInvoice,
}

/// How a usage record combines with the usage already recorded in the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageAction {
    /// Adds to the period's usage.
    Increment,
    /// Replaces the period's usage.
    Set,
}

/// What to do when dunning has run out of retries (Stripe's subscription setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DunningOutcome {
    /// Cancel the subscription.
    Cancel,
    /// Keep it, marked `unpaid`: no more renewals until a payment succeeds.
    MarkUnpaid,
}

/// A command to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionCommand {
    /// Subscribe → `SubscriptionCreated`.
    Create(NewSubscription),
    /// The billing clock's renewal of the period starting at `period_start` (the current period
    /// end); idempotent → `SubscriptionTrialEnded`?, then `SubscriptionRenewed` or
    /// `SubscriptionCanceled` (cancel at period end); none when already renewed.
    Renew {
        /// Start of the period to begin.
        period_start: DateTime<Utc>,
    },
    /// Change the plan and/or quantity now → `SubscriptionUpdated` (none when nothing changes).
    Change {
        /// The new plan (same interval and currency), or `None` to keep it.
        plan: Option<PlanSnapshot>,
        /// The new quantity, or `None` to keep it.
        quantity: Option<u32>,
        /// How to prorate.
        proration_behavior: ProrationBehavior,
    },
    /// Record metered usage → `UsageRecorded`.
    RecordUsage {
        /// Units of usage (≥ 0).
        quantity: i64,
        /// When it happened: within the current period, not after now.
        timestamp: DateTime<Utc>,
        /// Add or replace.
        action: UsageAction,
    },
    /// Pause collection → `SubscriptionPaused` (none when paused already).
    Pause,
    /// Resume collection → `SubscriptionResumed` (none when not paused).
    Resume,
    /// Cancel now (`SubscriptionCanceled`) or at period end (`SubscriptionCancelScheduled`);
    /// none when canceled (or scheduled) already.
    Cancel {
        /// Schedule instead of canceling now.
        at_period_end: bool,
    },
    /// A payment of an invoice of this subscription failed → `SubscriptionPastDue`, once per
    /// (invoice, attempt).
    PaymentFailed {
        /// The invoice.
        invoice_id: InvoiceId,
        /// Which attempt (1, 2, …).
        attempt: u32,
    },
    /// A payment succeeded → `SubscriptionPaymentRecovered` when past due or unpaid.
    PaymentSucceeded {
        /// The invoice paid.
        invoice_id: InvoiceId,
    },
    /// Dunning gave up on an invoice → `SubscriptionCanceled` or `SubscriptionMarkedUnpaid`.
    DunningExhausted {
        /// The invoice left unpaid.
        invoice_id: InvoiceId,
        /// What to do now.
        outcome: DunningOutcome,
    },
}
