//! The events of a subscription and their stored form (type name + snake_case JSON payload).

use chrono::{DateTime, Utc};
use ledger::ids::{CustomerId, InvoiceId, SubscriptionId};
use serde::{Deserialize, Serialize};

use super::command::{ProrationBehavior, UsageAction};
use super::{BillingItem, PlanSnapshot, SubscriptionStatus};
use crate::stored::{DomainEvent, from_json, to_json};

/// A subscription began: its first period, and what to invoice for it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCreated {
    pub subscription_id: SubscriptionId,
    pub customer_id: CustomerId,
    pub plan: PlanSnapshot,
    pub quantity: u32,
    /// `trialing` or `active`.
    pub status: SubscriptionStatus,
    /// The billing-cycle anchor: now, the trial end, or the future anchor asked for.
    pub anchor: DateTime<Utc>,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub trial_end: Option<DateTime<Utc>>,
    /// The prorated amount of a first period `[now, anchor)` (licensed plans), in minor units.
    pub first_period_amount: Option<i64>,
    /// The first period in advance (licensed, no trial); empty otherwise.
    pub invoice_lines: Vec<BillingItem>,
}

/// A new period began; `invoice_lines` is what the renewal invoice bills (empty when paused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRenewed {
    pub subscription_id: SubscriptionId,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub invoice_lines: Vec<BillingItem>,
}

/// The trial ended; the subscription is `active` (a renewal follows in the same append).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionTrialEnded {
    pub subscription_id: SubscriptionId,
    pub trial_end: DateTime<Utc>,
}

/// The plan and/or quantity changed at the event's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionUpdated {
    pub subscription_id: SubscriptionId,
    pub plan: PlanSnapshot,
    pub quantity: u32,
    pub proration_behavior: ProrationBehavior,
    /// Credit for unused time and charge for remaining time (empty: no proration).
    pub proration_items: Vec<BillingItem>,
    /// The caller invoices the items now (`always_invoice`); else they are pending.
    pub invoice_now: bool,
}

/// Metered usage was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecorded {
    pub subscription_id: SubscriptionId,
    pub quantity: i64,
    pub action: UsageAction,
    pub timestamp: DateTime<Utc>,
}

/// Collection was paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionPaused {
    pub subscription_id: SubscriptionId,
}

/// Collection was resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionResumed {
    pub subscription_id: SubscriptionId,
}

/// The subscription will cancel at `cancel_at` (its current period end) instead of renewing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCancelScheduled {
    pub subscription_id: SubscriptionId,
    pub cancel_at: DateTime<Utc>,
}

/// Why a subscription was canceled. JSON: `"requested"`, `"period_end"`, `"payment_failed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Canceled now on request.
    Requested,
    /// Canceled at the end of the period, as scheduled.
    PeriodEnd,
    /// Dunning gave up.
    PaymentFailed,
}

/// The subscription ended at `at`; `final_lines` is what is still to invoice (metered usage of
/// the unfinished period, pending proration items). Unused licensed time is not refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionCanceled {
    pub subscription_id: SubscriptionId,
    pub at: DateTime<Utc>,
    pub reason: CancelReason,
    pub final_lines: Vec<BillingItem>,
}

/// A payment attempt of an invoice failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionPastDue {
    pub subscription_id: SubscriptionId,
    pub invoice_id: InvoiceId,
    pub attempt: u32,
}

/// A payment succeeded after failures: the subscription is `active` again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionPaymentRecovered {
    pub subscription_id: SubscriptionId,
    pub invoice_id: InvoiceId,
}

/// Dunning gave up and the subscription is `unpaid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionMarkedUnpaid {
    pub subscription_id: SubscriptionId,
    pub invoice_id: InvoiceId,
}

/// Everything that happens to a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    Created(SubscriptionCreated),
    Renewed(SubscriptionRenewed),
    TrialEnded(SubscriptionTrialEnded),
    Updated(SubscriptionUpdated),
    UsageRecorded(UsageRecorded),
    Paused(SubscriptionPaused),
    Resumed(SubscriptionResumed),
    CancelScheduled(SubscriptionCancelScheduled),
    Canceled(SubscriptionCanceled),
    PastDue(SubscriptionPastDue),
    PaymentRecovered(SubscriptionPaymentRecovered),
    MarkedUnpaid(SubscriptionMarkedUnpaid),
}

impl DomainEvent for SubscriptionEvent {
    fn event_type(&self) -> &'static str {
        match self {
            SubscriptionEvent::Created(_) => "SubscriptionCreated",
            SubscriptionEvent::Renewed(_) => "SubscriptionRenewed",
            SubscriptionEvent::TrialEnded(_) => "SubscriptionTrialEnded",
            SubscriptionEvent::Updated(_) => "SubscriptionUpdated",
            SubscriptionEvent::UsageRecorded(_) => "UsageRecorded",
            SubscriptionEvent::Paused(_) => "SubscriptionPaused",
            SubscriptionEvent::Resumed(_) => "SubscriptionResumed",
            SubscriptionEvent::CancelScheduled(_) => "SubscriptionCancelScheduled",
            SubscriptionEvent::Canceled(_) => "SubscriptionCanceled",
            SubscriptionEvent::PastDue(_) => "SubscriptionPastDue",
            SubscriptionEvent::PaymentRecovered(_) => "SubscriptionPaymentRecovered",
            SubscriptionEvent::MarkedUnpaid(_) => "SubscriptionMarkedUnpaid",
        }
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            SubscriptionEvent::Created(e) => to_json(e),
            SubscriptionEvent::Renewed(e) => to_json(e),
            SubscriptionEvent::TrialEnded(e) => to_json(e),
            SubscriptionEvent::Updated(e) => to_json(e),
            SubscriptionEvent::UsageRecorded(e) => to_json(e),
            SubscriptionEvent::Paused(e) => to_json(e),
            SubscriptionEvent::Resumed(e) => to_json(e),
            SubscriptionEvent::CancelScheduled(e) => to_json(e),
            SubscriptionEvent::Canceled(e) => to_json(e),
            SubscriptionEvent::PastDue(e) => to_json(e),
            SubscriptionEvent::PaymentRecovered(e) => to_json(e),
            SubscriptionEvent::MarkedUnpaid(e) => to_json(e),
        }
    }

    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        match event_type {
            "SubscriptionCreated" => from_json(payload).map(SubscriptionEvent::Created),
            "SubscriptionRenewed" => from_json(payload).map(SubscriptionEvent::Renewed),
            "SubscriptionTrialEnded" => from_json(payload).map(SubscriptionEvent::TrialEnded),
            "SubscriptionUpdated" => from_json(payload).map(SubscriptionEvent::Updated),
            "UsageRecorded" => from_json(payload).map(SubscriptionEvent::UsageRecorded),
            "SubscriptionPaused" => from_json(payload).map(SubscriptionEvent::Paused),
            "SubscriptionResumed" => from_json(payload).map(SubscriptionEvent::Resumed),
            "SubscriptionCancelScheduled" => {
                from_json(payload).map(SubscriptionEvent::CancelScheduled)
            }
            "SubscriptionCanceled" => from_json(payload).map(SubscriptionEvent::Canceled),
            "SubscriptionPastDue" => from_json(payload).map(SubscriptionEvent::PastDue),
            "SubscriptionPaymentRecovered" => {
                from_json(payload).map(SubscriptionEvent::PaymentRecovered)
            }
            "SubscriptionMarkedUnpaid" => from_json(payload).map(SubscriptionEvent::MarkedUnpaid),
            _ => None,
        }
    }
}
