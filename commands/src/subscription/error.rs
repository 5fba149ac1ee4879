//! Why a subscription command was refused.

use chrono::{DateTime, Utc};
use ledger::ids::SubscriptionId;
use ledger::money::{Currency, MoneyError};

use super::{QUANTITY_MAX, SubscriptionStatus, TRIAL_MAX_DAYS};
use crate::pricing::{Interval, ProrationError};

/// Why a subscription command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// No subscription with this id.
    #[error("no such subscription")]
    NotFound,
    /// `Create` on an existing subscription.
    #[error("subscription {0} exists already")]
    AlreadyExists(SubscriptionId),
    /// Quantity out of range (or not 1 on a metered plan).
    #[error(
        "quantity must be from 1 to {QUANTITY_MAX} for a licensed plan, and exactly 1 for a metered one"
    )]
    QuantityInvalid,
    /// A negative plan price.
    #[error("the plan price must not be negative")]
    PriceInvalid,
    /// Trial end not after now, or too far ahead.
    #[error("trial_end must be after now and at most {TRIAL_MAX_DAYS} days ahead")]
    TrialInvalid,
    /// Billing-cycle anchor in the past, a whole interval or more ahead, or with a trial.
    #[error(
        "billing_cycle_anchor must be from now to less than one interval ahead, and not with a trial"
    )]
    AnchorInvalid,
    /// Usage recorded on a licensed plan.
    #[error("usage can only be recorded on a metered plan")]
    NotMetered,
    /// A negative usage quantity.
    #[error("usage quantity must not be negative")]
    UsageInvalid,
    /// Usage timestamp outside the current period (or in the future).
    #[error("usage at {at} is outside the current period {start} .. {end} (or after now)")]
    UsageOutsidePeriod {
        /// The usage timestamp.
        at: DateTime<Utc>,
        /// Start of the current period.
        start: DateTime<Utc>,
        /// End of the current period (exclusive).
        end: DateTime<Utc>,
    },
    /// The subscription is canceled.
    #[error("the subscription is canceled")]
    Canceled,
    /// The command is not possible in the current status.
    #[error("cannot {action} a subscription that is {}", status.as_str())]
    StatusInvalid {
        /// What was asked.
        action: &'static str,
        /// The status it is in.
        status: SubscriptionStatus,
    },
    /// A plan change to another interval (Stripe would reset the billing cycle; refused here).
    #[error("the new plan bills every {new:?}, the subscription every {current:?}")]
    IntervalMismatch {
        /// The subscription's interval.
        current: Interval,
        /// The new plan's interval.
        new: Interval,
    },
    /// A plan change to another currency (a subscription keeps its currency, as in Stripe).
    #[error("the new plan is priced in {new}, the subscription in {current}")]
    CurrencyMismatch {
        /// The subscription's currency.
        current: Currency,
        /// The new plan's currency.
        new: Currency,
    },
    /// A plan change between licensed and metered usage.
    #[error("cannot change between licensed and metered plans")]
    UsageTypeMismatch,
    /// A change after the current period ended: the renewal must run first.
    #[error("the current period ended at {period_end}; renew first")]
    PeriodEnded {
        /// End of the current period.
        period_end: DateTime<Utc>,
    },
    /// A renewal that is not the next one, or not yet due.
    #[error("renewal of the period starting at {requested} is not due (next at {next}, now {now})")]
    NotDue {
        /// The period start asked for.
        requested: DateTime<Utc>,
        /// The next renewal (the current period end).
        next: DateTime<Utc>,
        /// The decision time.
        now: DateTime<Utc>,
    },
    /// A period boundary beyond the dates that can be represented.
    #[error("billing period out of range")]
    PeriodOutOfRange,
    /// An amount too large to represent.
    #[error(transparent)]
    Overflow(#[from] MoneyError),
    /// Proration could not be computed.
    #[error(transparent)]
    Proration(#[from] ProrationError),
}
