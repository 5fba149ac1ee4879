//! Charges authorized first and captured later, so that the gateway's own risk level (Stripe
//! Radar's `risk_level`, which comes with the payment) is screened before money moves.
//!
//! When a fraud rule reads the gateway's risk level and the charge's gateway can authorize,
//! the charge is requested with `capture_later` and goes: `ChargeAuthorized` (the hold, with the
//! risk level) and `FraudAssessed` on that level in one append; then, by the decision:
//! - allow: captured (`ChargeSucceeded`);
//! - review: held (`in_review`) until approved (captured) or rejected (canceled at the gateway,
//!   then `ChargeFailed` `review_rejected`);
//! - block: canceled at the gateway, then `ChargeFailed` `fraud_blocked`.
//!
//! A charge a person approved in review already is captured whatever the level: their decision
//! stands. Capture and cancel carry their own idempotency keys (`<key>:capture`,
//! `<key>:cancel`), so a crash at any step is completed by recovery without a second capture.

use serde::{Deserialize, Serialize};

use super::fraud::{FraudDecision, FraudRules, assess_gateway_risk};
use super::review::{FRAUD_BLOCKED, FraudAssessed, REVIEW_REJECTED, ReviewEvent};
use super::{Charge, ChargeEvent, ChargeStatus};
use ledger::ids::ChargeId;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeAuthorized {
    pub charge_id: ChargeId,
    /// The authorization at the gateway (Stripe: the PaymentIntent).
    pub gateway_charge_id: String,
    /// As the gateway reported it (`normal`, `elevated`, `highest`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<String>,
}

/// Folds an authorization into its charge.
pub(super) fn apply(c: &mut Charge, e: &ChargeAuthorized) {
    c.authorized = true;
    c.gateway_charge_id = Some(e.gateway_charge_id.clone());
    c.risk_level = e.risk_level.clone();
}

/// The assessment of a just-authorized charge on its gateway's risk level; none when a person
/// approved the charge already.
pub fn screened(charge: &Charge, rules: &FraudRules) -> Vec<ChargeEvent> {
    if charge.review_closed.is_some() {
        return Vec::new();
    }
    let a = assess_gateway_risk(rules, charge.risk_level.as_deref());
    vec![ChargeEvent::Review(ReviewEvent::Assessed(FraudAssessed {
        charge_id: charge.id,
        decision: a.decision,
        rules: a.rules,
    }))]
}

/// What is to be done with an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Capture,
    /// Cancel it, then record the charge failed with this code.
    Cancel {
        failure_code: &'static str,
        failure_message: String,
    },
}

impl Settlement {
    /// The step's name, in its idempotency key.
    pub const fn step(&self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Cancel { .. } => "cancel",
        }
    }
}

/// What an authorized charge waits for; `None` when it holds no authorization, or is held in
/// review.
pub fn settlement(charge: &Charge) -> Option<Settlement> {
    if !charge.authorized || charge.status != ChargeStatus::Pending {
        return None;
    }
    let blocked = charge
        .fraud
        .as_ref()
        .filter(|a| a.decision == FraudDecision::Block);
    Some(match (charge.review_closed, blocked) {
        (Some(false), _) => Settlement::Cancel {
            failure_code: REVIEW_REJECTED,
            failure_message: "Rejected in review; the authorization was canceled.".into(),
        },
        (_, Some(a)) => Settlement::Cancel {
            failure_code: FRAUD_BLOCKED,
            failure_message: format!(
                "Blocked by fraud rules: {}; the authorization was canceled.",
                a.rules.join(", ")
            ),
        },
        _ => Settlement::Capture,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use ledger::money::{Currency, Money};

    use super::super::fraud::RiskLevel;
    use super::super::review::{ReviewClosed, decide_close};
    use super::super::{ChargeCommand, decide, evolve};
    use super::*;

    fn rules() -> FraudRules {
        FraudRules {
            gateway_risk_review: Some(RiskLevel::Elevated),
            gateway_risk_block: Some(RiskLevel::Highest),
            ..FraudRules::default()
        }
    }

    /// A charge requested with `capture_later`, then authorized at `level` and screened.
    fn authorized(level: &str) -> Charge {
        let mut events = decide(
            None,
            ChargeCommand::Request {
                charge_id: ChargeId::derived(level),
                amount: Money::new(5_000, Currency::USD),
                customer_id: None,
                payment_method: "pm_card_visa".into(),
                description: None,
                gateway: "stripe".into(),
                off_session: false,
                gateway_customer: None,
                capture_later: true,
                request_fingerprint: None,
            },
        )
        .unwrap();
        let mut charge = fold(None, &events);
        events = decide(
            charge.as_ref(),
            ChargeCommand::RecordAuthorization {
                gateway_charge_id: "pi_1".into(),
                risk_level: Some(level.into()),
            },
        )
        .unwrap();
        charge = fold(charge, &events);
        let screened = screened(charge.as_ref().unwrap(), &rules());
        fold(charge, &screened).unwrap()
    }

    fn fold(state: Option<Charge>, events: &[ChargeEvent]) -> Option<Charge> {
        events.iter().fold(state, |s, e| evolve(s, e, Utc::now()))
    }

    #[test]
    fn allowed_authorizations_are_captured_and_blocked_ones_canceled() {
        let normal = authorized("normal");
        assert!(normal.capture_later && normal.authorized);
        assert_eq!(normal.status, ChargeStatus::Pending);
        assert_eq!(normal.risk_level.as_deref(), Some("normal"));
        assert_eq!(normal.gateway_charge_id.as_deref(), Some("pi_1"));
        assert_eq!(settlement(&normal), Some(Settlement::Capture));
        let highest = authorized("highest");
        match settlement(&highest) {
            Some(Settlement::Cancel { failure_code, .. }) => {
                assert_eq!(failure_code, FRAUD_BLOCKED)
            }
            other => panic!("{other:?}"),
        }
        // Authorized once: a second answer adds nothing.
        let again = decide(
            Some(&normal),
            ChargeCommand::RecordAuthorization {
                gateway_charge_id: "pi_1".into(),
                risk_level: None,
            },
        )
        .unwrap();
        assert!(again.is_empty());
        // Captured: nothing more waits.
        let done = fold(
            Some(normal.clone()),
            &decide(
                Some(&normal),
                ChargeCommand::RecordSuccess {
                    gateway_charge_id: "pi_1".into(),
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(done.status, ChargeStatus::Succeeded);
        assert_eq!(settlement(&done), None);
    }

    #[test]
    fn a_review_holds_the_authorization_until_approved_or_rejected() {
        let held = authorized("elevated");
        assert_eq!(held.status, ChargeStatus::InReview);
        assert_eq!(
            settlement(&held),
            None,
            "held: neither captured nor canceled"
        );
        let approve = decide_close(&held, true).unwrap();
        let approved = fold(Some(held.clone()), &approve).unwrap();
        assert_eq!(settlement(&approved), Some(Settlement::Capture));
        // Rejecting an authorization records the verdict alone: the charge fails once the
        // gateway has canceled the hold.
        let reject = decide_close(&held, false).unwrap();
        assert_eq!(
            reject,
            [ChargeEvent::Review(ReviewEvent::Closed(ReviewClosed {
                charge_id: held.id,
                approved: false
            }))]
        );
        let rejected = fold(Some(held), &reject).unwrap();
        assert_eq!(rejected.status, ChargeStatus::Pending);
        match settlement(&rejected) {
            Some(Settlement::Cancel { failure_code, .. }) => {
                assert_eq!(failure_code, REVIEW_REJECTED)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_charge_approved_by_a_person_is_not_screened_again_on_the_gateway_level() {
        // Held before the gateway (an amount rule), approved, then authorized at `highest`.
        let requested = decide(
            None,
            ChargeCommand::Request {
                charge_id: ChargeId::derived("approved"),
                amount: Money::new(90_000, Currency::USD),
                customer_id: None,
                payment_method: "pm_card_visa".into(),
                description: None,
                gateway: "stripe".into(),
                off_session: false,
                gateway_customer: None,
                capture_later: true,
                request_fingerprint: None,
            },
        )
        .unwrap();
        let mut charge = fold(None, &requested).unwrap();
        let review = super::super::fraud::Assessment {
            decision: FraudDecision::Review,
            rules: vec!["amount_review".into()],
        };
        let held = super::super::review::decide_assessment(&charge, &review);
        charge = fold(Some(charge), &held).unwrap();
        assert_eq!(charge.status, ChargeStatus::InReview);
        let approve = decide_close(&charge, true).unwrap();
        charge = fold(Some(charge), &approve).unwrap();
        let authorization = decide(
            Some(&charge),
            ChargeCommand::RecordAuthorization {
                gateway_charge_id: "pi_2".into(),
                risk_level: Some("highest".into()),
            },
        )
        .unwrap();
        charge = fold(Some(charge), &authorization).unwrap();
        assert!(
            screened(&charge, &rules()).is_empty(),
            "their decision stands"
        );
        assert_eq!(settlement(&charge), Some(Settlement::Capture));
    }
}
