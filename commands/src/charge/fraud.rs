//! Fraud screening, before the gateway is called: pure rules over the facts of one charge
//! attempt. Each rule that fires names itself; the strongest action wins (`block` over `review`
//! over `allow`).
//!
//! Rules (each off unless configured):
//! - velocity: more than N attempts per customer, or per payment method, in the last hour;
//! - amount: above a review and/or a block threshold per currency;
//! - country mismatch: the customer's billing country is not the payment method's country;
//! - the gateway's risk level (Stripe Radar's `risk_level`): it comes with the payment, so a
//!   charge screened on it is authorized first and captured only when allowed
//!   ([`assess_gateway_risk`], see `authorization`).

use std::collections::HashMap;

use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};

/// What screening decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FraudDecision {
    Allow,
    /// Held until someone approves (then charged) or rejects (then failed) it.
    Review,
    /// Refused: the gateway is never called.
    Block,
}

impl FraudDecision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Review => "review",
            Self::Block => "block",
        }
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Review,
    Block,
}

impl RuleAction {
    fn decision(self) -> FraudDecision {
        match self {
            Self::Review => FraudDecision::Review,
            Self::Block => FraudDecision::Block,
        }
    }
}

/// The configured rules. The default screens nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FraudRules {
    /// (attempts per hour allowed per customer, action beyond).
    pub velocity_per_customer: Option<(u32, RuleAction)>,
    /// (attempts per hour allowed per payment method, action beyond).
    pub velocity_per_method: Option<(u32, RuleAction)>,
    /// Amounts above these are reviewed, per currency (minor units).
    pub review_above: HashMap<Currency, i64>,
    /// Amounts above these are blocked, per currency (minor units).
    pub block_above: HashMap<Currency, i64>,
    pub country_mismatch: Option<RuleAction>,
    /// Authorizations the gateway rates at or above this level are reviewed.
    pub gateway_risk_review: Option<RiskLevel>,
    /// Authorizations the gateway rates at or above this level are canceled (blocked).
    pub gateway_risk_block: Option<RiskLevel>,
}

impl FraudRules {
    /// Whether any rule is on (otherwise nothing is screened or recorded).
    pub fn enabled(&self) -> bool {
        *self != Self::default()
    }

    /// Whether a rule reads the gateway's risk level (charges are then authorized first where
    /// the gateway can).
    pub fn reads_gateway_risk(&self) -> bool {
        self.gateway_risk_review.is_some() || self.gateway_risk_block.is_some()
    }
}

/// A gateway's risk rating of a payment (Stripe Radar's `risk_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskLevel {
    Normal,
    Elevated,
    Highest,
}

impl RiskLevel {
    /// `normal`, `elevated`, `highest`; anything else (`not_assessed`, `unknown`) is no rating.
    pub fn parse(level: &str) -> Option<Self> {
        match level {
            "normal" => Some(Self::Normal),
            "elevated" => Some(Self::Elevated),
            "highest" => Some(Self::Highest),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Elevated => "elevated",
            Self::Highest => "highest",
        }
    }
}

/// Screens an authorization on the gateway's risk `level` (no rating: allowed). The rule that
/// fires is named `gateway_risk_<level>`.
pub fn assess_gateway_risk(rules: &FraudRules, level: Option<&str>) -> Assessment {
    let level = level.and_then(RiskLevel::parse);
    let at_least =
        |min: Option<RiskLevel>| matches!((min, level), (Some(min), Some(l)) if l >= min);
    let decision = if at_least(rules.gateway_risk_block) {
        FraudDecision::Block
    } else if at_least(rules.gateway_risk_review) {
        FraudDecision::Review
    } else {
        FraudDecision::Allow
    };
    Assessment {
        decision,
        rules: match (decision, level) {
            (FraudDecision::Allow, _) | (_, None) => Vec::new(),
            (_, Some(l)) => vec![format!("gateway_risk_{}", l.as_str())],
        },
    }
}

/// What is known about one attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiskFacts {
    /// Attempts in the last hour before this one, for the customer and for the payment method.
    pub customer_attempts_last_hour: u32,
    pub method_attempts_last_hour: u32,
    /// ISO 3166-1 alpha-2, upper case.
    pub billing_country: Option<String>,
    pub method_country: Option<String>,
}

/// The decision and the rules that fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub decision: FraudDecision,
    pub rules: Vec<String>,
}

/// Screens one attempt of `amount`.
pub fn assess(rules: &FraudRules, amount: Money, facts: &RiskFacts) -> Assessment {
    let mut fired: Vec<(&str, FraudDecision)> = Vec::new();
    if let Some((max, action)) = rules.velocity_per_customer
        && facts.customer_attempts_last_hour >= max
    {
        fired.push(("velocity_customer", action.decision()));
    }
    if let Some((max, action)) = rules.velocity_per_method
        && facts.method_attempts_last_hour >= max
    {
        fired.push(("velocity_payment_method", action.decision()));
    }
    let minor = amount.amount_minor();
    if rules
        .block_above
        .get(&amount.currency())
        .is_some_and(|max| minor > *max)
    {
        fired.push(("amount_block", FraudDecision::Block));
    } else if rules
        .review_above
        .get(&amount.currency())
        .is_some_and(|max| minor > *max)
    {
        fired.push(("amount_review", FraudDecision::Review));
    }
    if let (Some(action), Some(billing), Some(method)) = (
        rules.country_mismatch,
        &facts.billing_country,
        &facts.method_country,
    ) && !billing.eq_ignore_ascii_case(method)
    {
        fired.push(("country_mismatch", action.decision()));
    }
    Assessment {
        decision: fired
            .iter()
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(FraudDecision::Allow),
        rules: fired.into_iter().map(|(r, _)| r.to_string()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::USD)
    }

    fn rules() -> FraudRules {
        FraudRules {
            velocity_per_customer: Some((5, RuleAction::Block)),
            velocity_per_method: Some((3, RuleAction::Review)),
            review_above: HashMap::from([(Currency::USD, 50_000)]),
            block_above: HashMap::from([(Currency::USD, 500_000)]),
            country_mismatch: Some(RuleAction::Review),
            gateway_risk_review: None,
            gateway_risk_block: None,
        }
    }

    #[test]
    fn the_gateway_risk_level_reviews_or_blocks_at_and_above_its_thresholds() {
        let rules = FraudRules {
            gateway_risk_review: Some(RiskLevel::Elevated),
            gateway_risk_block: Some(RiskLevel::Highest),
            ..FraudRules::default()
        };
        assert!(rules.enabled() && rules.reads_gateway_risk());
        assert!(!FraudRules::default().reads_gateway_risk());
        let at = |level| assess_gateway_risk(&rules, level);
        assert_eq!(at(Some("normal")).decision, FraudDecision::Allow);
        assert!(at(Some("normal")).rules.is_empty());
        assert_eq!(
            at(Some("elevated")),
            Assessment {
                decision: FraudDecision::Review,
                rules: vec!["gateway_risk_elevated".into()]
            }
        );
        assert_eq!(at(Some("highest")).decision, FraudDecision::Block);
        assert_eq!(at(Some("highest")).rules, ["gateway_risk_highest"]);
        // No rating, or one we do not know: allowed.
        for level in [None, Some("not_assessed"), Some("unknown"), Some("HIGHEST")] {
            assert_eq!(at(level).decision, FraudDecision::Allow, "{level:?}");
        }
        // Review only: the highest level is reviewed, not blocked.
        let review_only = FraudRules {
            gateway_risk_review: Some(RiskLevel::Elevated),
            ..FraudRules::default()
        };
        assert_eq!(
            assess_gateway_risk(&review_only, Some("highest")).decision,
            FraudDecision::Review
        );
    }

    #[test]
    fn nothing_fires_for_an_ordinary_attempt_and_default_rules_screen_nothing() {
        let a = assess(&rules(), usd(1_000), &RiskFacts::default());
        assert_eq!(a.decision, FraudDecision::Allow);
        assert!(a.rules.is_empty());
        assert!(!FraudRules::default().enabled());
        assert!(rules().enabled());
        let huge = RiskFacts {
            customer_attempts_last_hour: 1_000,
            ..RiskFacts::default()
        };
        assert_eq!(
            assess(&FraudRules::default(), usd(i64::MAX), &huge).decision,
            FraudDecision::Allow
        );
    }

    #[test]
    fn each_rule_fires_at_its_threshold_and_the_strongest_action_wins() {
        let r = rules();
        let at = |f: RiskFacts, amount| assess(&r, usd(amount), &f);
        let review = at(
            RiskFacts {
                method_attempts_last_hour: 3,
                ..RiskFacts::default()
            },
            100,
        );
        assert_eq!(
            (review.decision, review.rules.as_slice()),
            (
                FraudDecision::Review,
                &["velocity_payment_method".to_string()][..]
            )
        );
        let under = at(
            RiskFacts {
                method_attempts_last_hour: 2,
                customer_attempts_last_hour: 4,
                ..RiskFacts::default()
            },
            50_000,
        );
        assert_eq!(under.decision, FraudDecision::Allow, "{under:?}");
        assert_eq!(
            at(RiskFacts::default(), 50_001).decision,
            FraudDecision::Review
        );
        let both = at(
            RiskFacts {
                customer_attempts_last_hour: 5,
                billing_country: Some("FR".into()),
                method_country: Some("us".into()),
                ..RiskFacts::default()
            },
            500_001,
        );
        assert_eq!(both.decision, FraudDecision::Block);
        assert_eq!(
            both.rules,
            ["velocity_customer", "amount_block", "country_mismatch"]
        );
        let same_country = at(
            RiskFacts {
                billing_country: Some("US".into()),
                method_country: Some("us".into()),
                ..RiskFacts::default()
            },
            1,
        );
        assert!(same_country.rules.is_empty());
        // Thresholds are per currency: none for EUR.
        assert_eq!(
            assess(
                &r,
                Money::new(10_000_000, Currency::EUR),
                &RiskFacts::default()
            )
            .decision,
            FraudDecision::Allow
        );
    }
}
