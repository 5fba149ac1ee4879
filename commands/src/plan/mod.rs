//! A plan: what a subscription is billed, in which currencies, how often.
//!
//! Prices are integer minor units per currency (the plan's own currency plus optional others,
//! like Stripe's `currency_options`); the interval is day/week/month/year × count (at most a
//! year); usage is `licensed` (billed in advance per quantity) or `metered` (billed in arrears).
//! An archived plan takes no new subscriptions; existing ones keep it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger::ids::PlanId;
use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::pricing::tiers::{self, TierError};
use crate::pricing::{Interval, Tier};
use crate::stored::{DomainEvent, from_json, to_json};

/// Largest price of a plan, in minor units (as for charges).
pub const PLAN_MAX_MINOR: i64 = 99_999_999;
/// Longest free trial, in days (Stripe's limit).
pub const TRIAL_MAX_DAYS: u32 = 730;
/// Longest plan name, in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// Most additional currencies on one plan.
pub const EXTRA_CURRENCIES_MAX: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageType {
    /// Billed in advance, per quantity.
    Licensed,
    /// Billed in arrears, per recorded usage.
    Metered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCreated {
    pub plan_id: PlanId,
    pub name: String,
    pub currency: Currency,
    pub amount: i64,
    /// Prices in other currencies, by lowercase code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, i64>,
    #[serde(flatten)]
    pub interval: Interval,
    pub usage_type: UsageType,
    pub trial_days: u32,
    /// Graduated tiers (then `amount` is 0 and there are no other currencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanArchived {
    pub plan_id: PlanId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanEvent {
    Created(PlanCreated),
    Archived(PlanArchived),
}

impl DomainEvent for PlanEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PlanEvent::Created(_) => "PlanCreated",
            PlanEvent::Archived(_) => "PlanArchived",
        }
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            PlanEvent::Created(e) => to_json(e),
            PlanEvent::Archived(e) => to_json(e),
        }
    }

    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        match event_type {
            "PlanCreated" => from_json(payload).map(PlanEvent::Created),
            "PlanArchived" => from_json(payload).map(PlanEvent::Archived),
            _ => None,
        }
    }
}

/// The folded state of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub id: PlanId,
    pub name: String,
    pub price: Money,
    pub prices: BTreeMap<String, i64>,
    pub interval: Interval,
    pub usage_type: UsageType,
    pub trial_days: u32,
    /// Graduated tiers; empty for a flat price per unit.
    pub tiers: Vec<Tier>,
    pub active: bool,
    pub created: DateTime<Utc>,
}

impl Plan {
    /// The plan's price in `currency`, if it has one.
    pub fn price_in(&self, currency: Currency) -> Option<Money> {
        if currency == self.price.currency() {
            return Some(self.price);
        }
        self.prices
            .get(currency.code())
            .map(|a| Money::new(*a, currency))
    }
}

/// A plan to create (parsed and typed by the caller; checked by `decide`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlan {
    pub plan_id: PlanId,
    pub name: String,
    pub price: Money,
    pub prices: Vec<Money>,
    pub interval: Interval,
    pub usage_type: UsageType,
    pub trial_days: u32,
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanCommand {
    Create(NewPlan),
    Archive,
}

/// Why a plan command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("name must be 1 to {NAME_MAX_CHARS} characters, without NUL")]
    NameInvalid,
    #[error("amount must be an integer of minor units from 0 to {PLAN_MAX_MINOR}")]
    AmountInvalid,
    #[error(
        "prices: at most {EXTRA_CURRENCIES_MAX} other currencies, each once and not the plan's own currency, amounts from 0 to {PLAN_MAX_MINOR}"
    )]
    PricesInvalid,
    #[error("trial_days must be at most {TRIAL_MAX_DAYS}")]
    TrialTooLong,
    #[error("{0}; a tiered plan has amount 0 and no other currencies")]
    TiersInvalid(TierError),
    #[error("plan {0} exists already")]
    AlreadyExists(PlanId),
    #[error("no such plan")]
    NotFound,
}

impl Aggregate for Plan {
    type Event = PlanEvent;
    type Command = PlanCommand;
    type Error = PlanError;
    const CATEGORY: &'static str = "plan";

    fn decide(
        state: Option<&Plan>,
        command: PlanCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<PlanEvent>, PlanError> {
        match (state, command) {
            (Some(existing), PlanCommand::Create(_)) => Err(PlanError::AlreadyExists(existing.id)),
            (None, PlanCommand::Create(new)) => create(new),
            (None, PlanCommand::Archive) => Err(PlanError::NotFound),
            // Archiving twice changes nothing (like Stripe's `active: false` again).
            (Some(plan), PlanCommand::Archive) if !plan.active => Ok(vec![]),
            (Some(plan), PlanCommand::Archive) => {
                Ok(vec![PlanEvent::Archived(PlanArchived { plan_id: plan.id })])
            }
        }
    }

    fn evolve(state: Option<Plan>, event: &PlanEvent, at: DateTime<Utc>) -> Option<Plan> {
        match (state, event) {
            (None, PlanEvent::Created(e)) => Some(Plan {
                id: e.plan_id,
                name: e.name.clone(),
                price: Money::new(e.amount, e.currency),
                prices: e.prices.clone(),
                interval: e.interval,
                usage_type: e.usage_type,
                trial_days: e.trial_days,
                tiers: e.tiers.clone(),
                active: true,
                created: at,
            }),
            (Some(mut plan), PlanEvent::Archived(_)) => {
                plan.active = false;
                Some(plan)
            }
            (state, _) => state,
        }
    }
}

fn create(new: NewPlan) -> Result<Vec<PlanEvent>, PlanError> {
    let name_ok = !new.name.trim().is_empty()
        && new.name.chars().count() <= NAME_MAX_CHARS
        && !new.name.contains('\0');
    if !name_ok {
        return Err(PlanError::NameInvalid);
    }
    if !(0..=PLAN_MAX_MINOR).contains(&new.price.amount_minor()) {
        return Err(PlanError::AmountInvalid);
    }
    if new.trial_days > TRIAL_MAX_DAYS {
        return Err(PlanError::TrialTooLong);
    }
    if !new.tiers.is_empty() {
        tiers::check(&new.tiers).map_err(PlanError::TiersInvalid)?;
        if !new.price.is_zero() || !new.prices.is_empty() {
            return Err(PlanError::TiersInvalid(tiers::TierError));
        }
    }
    if new.prices.len() > EXTRA_CURRENCIES_MAX {
        return Err(PlanError::PricesInvalid);
    }
    let mut prices = BTreeMap::new();
    for p in &new.prices {
        let ok = p.currency() != new.price.currency()
            && (0..=PLAN_MAX_MINOR).contains(&p.amount_minor())
            && prices
                .insert(p.currency().code().to_string(), p.amount_minor())
                .is_none();
        if !ok {
            return Err(PlanError::PricesInvalid);
        }
    }
    Ok(vec![PlanEvent::Created(PlanCreated {
        plan_id: new.plan_id,
        name: new.name,
        currency: new.price.currency(),
        amount: new.price.amount_minor(),
        prices,
        interval: new.interval,
        usage_type: new.usage_type,
        trial_days: new.trial_days,
        tiers: new.tiers,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::IntervalUnit;

    fn new_plan() -> NewPlan {
        NewPlan {
            plan_id: PlanId::derived("basic"),
            name: "Basic".into(),
            price: Money::new(1000, Currency::USD),
            prices: vec![Money::new(900, Currency::EUR)],
            interval: Interval::new(IntervalUnit::Month, 1).unwrap(),
            usage_type: UsageType::Licensed,
            trial_days: 14,
            tiers: vec![],
        }
    }

    fn run(state: Option<Plan>, command: PlanCommand) -> Result<Option<Plan>, PlanError> {
        let events = Plan::decide(state.as_ref(), command, Utc::now())?;
        Ok(events
            .iter()
            .fold(state, |s, e| Plan::evolve(s, e, Utc::now())))
    }

    #[test]
    fn create_then_archive_once() {
        let plan = run(None, PlanCommand::Create(new_plan())).unwrap().unwrap();
        assert!(plan.active);
        assert_eq!(
            plan.price_in(Currency::EUR),
            Some(Money::new(900, Currency::EUR))
        );
        assert_eq!(
            plan.price_in(Currency::USD),
            Some(Money::new(1000, Currency::USD))
        );
        assert_eq!(plan.price_in(Currency::JPY), None);
        let archived = run(Some(plan.clone()), PlanCommand::Archive)
            .unwrap()
            .unwrap();
        assert!(!archived.active);
        let again = Plan::decide(Some(&archived), PlanCommand::Archive, Utc::now()).unwrap();
        assert!(again.is_empty(), "archiving twice records nothing");
        assert_eq!(
            Plan::decide(Some(&plan), PlanCommand::Create(new_plan()), Utc::now()),
            Err(PlanError::AlreadyExists(plan.id))
        );
        assert_eq!(
            Plan::decide(None, PlanCommand::Archive, Utc::now()),
            Err(PlanError::NotFound)
        );
    }

    #[test]
    fn bad_plans_are_refused() {
        type Change = fn(&mut NewPlan);
        let cases: Vec<(Change, PlanError)> = vec![
            (|p| p.name = " ".into(), PlanError::NameInvalid),
            (|p| p.name = "x".repeat(201), PlanError::NameInvalid),
            (|p| p.name = "a\0b".into(), PlanError::NameInvalid),
            (
                |p| p.price = Money::new(-1, Currency::USD),
                PlanError::AmountInvalid,
            ),
            (
                |p| p.price = Money::new(PLAN_MAX_MINOR + 1, Currency::USD),
                PlanError::AmountInvalid,
            ),
            (|p| p.trial_days = 731, PlanError::TrialTooLong),
            (
                |p| p.prices = vec![Money::new(1, Currency::USD)],
                PlanError::PricesInvalid,
            ),
            (
                |p| p.prices = vec![Money::new(1, Currency::EUR), Money::new(2, Currency::EUR)],
                PlanError::PricesInvalid,
            ),
            (
                |p| p.prices = vec![Money::new(-5, Currency::EUR)],
                PlanError::PricesInvalid,
            ),
        ];
        for (change, expected) in cases {
            let mut p = new_plan();
            change(&mut p);
            assert_eq!(
                Plan::decide(None, PlanCommand::Create(p), Utc::now()),
                Err(expected.clone())
            );
        }
        let mut free = new_plan();
        free.price = Money::new(0, Currency::JPY);
        free.prices.clear();
        assert!(
            Plan::decide(None, PlanCommand::Create(free), Utc::now()).is_ok(),
            "a free plan is fine"
        );
    }

    #[test]
    fn events_round_trip_through_the_envelope() {
        for e in Plan::decide(None, PlanCommand::Create(new_plan()), Utc::now()).unwrap() {
            let payload = e.payload();
            assert_eq!(payload["interval"], "month");
            assert_eq!(payload["interval_count"], 1);
            assert_eq!(
                PlanEvent::from_stored(e.event_type(), &payload).as_ref(),
                Some(&e)
            );
        }
    }
}
