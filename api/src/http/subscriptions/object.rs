//! The subscription object (Stripe's shape).

use commands::charge::Rendered;
use commands::subscription::Subscription;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionPlan {
    /// `plan_…`
    pub id: String,
    pub name: String,
    /// Price per unit in this subscription's currency, minor units.
    pub amount: i64,
    pub currency: String,
    pub interval: String,
    pub interval_count: u32,
    /// `licensed` or `metered`.
    pub usage_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionObject {
    /// `sub_…`
    pub id: String,
    /// Always `subscription`.
    pub object: &'static str,
    pub customer: String,
    /// `trialing`, `active`, `past_due`, `canceled`, `unpaid` or `paused`.
    pub status: &'static str,
    pub plan: SubscriptionPlan,
    pub quantity: u32,
    pub currency: String,
    pub billing_cycle_anchor: String,
    pub current_period_start: String,
    pub current_period_end: String,
    pub trial_end: Option<String>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<String>,
    /// `in_…`: the last invoice a period, change or cancellation asked for.
    pub latest_invoice: Option<String>,
    /// Proration items waiting for the next renewal's invoice.
    pub pending_invoice_items: usize,
    /// Metered usage recorded in the current period.
    pub usage_in_period: i64,
    pub created: String,
    pub livemode: bool,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn object(s: &Subscription) -> SubscriptionObject {
    SubscriptionObject {
        id: s.id.to_string(),
        object: "subscription",
        customer: s.customer_id.to_string(),
        status: s.status.as_str(),
        plan: SubscriptionPlan {
            id: s.plan.plan_id.to_string(),
            name: s.plan.name.clone(),
            amount: s.plan.price.amount_minor(),
            currency: s.currency().code().to_string(),
            interval: s.plan.interval.unit().to_string(),
            interval_count: s.plan.interval.count(),
            usage_type: match s.plan.usage_type {
                commands::plan::UsageType::Licensed => "licensed",
                commands::plan::UsageType::Metered => "metered",
            }
            .to_string(),
        },
        quantity: s.quantity,
        currency: s.currency().code().to_string(),
        billing_cycle_anchor: rfc3339(s.anchor),
        current_period_start: rfc3339(s.current_period_start),
        current_period_end: rfc3339(s.current_period_end),
        trial_end: s.trial_end.map(rfc3339),
        cancel_at_period_end: s.cancel_at_period_end,
        canceled_at: s.canceled_at.map(rfc3339),
        latest_invoice: s.latest_invoice.map(|i| i.to_string()),
        pending_invoice_items: s.pending_items.len(),
        usage_in_period: s.usage_in_period,
        created: rfc3339(s.created),
        livemode: false,
    }
}

pub fn render(s: &Subscription) -> Rendered {
    Rendered {
        status: 200,
        body: serde_json::to_string(&object(s)).unwrap_or_default(),
    }
}
