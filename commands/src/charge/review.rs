//! Fraud decisions and reviews on a charge's stream: `FraudAssessed` right after
//! `ChargeRequested` (in the same append, before the gateway is called); a `review` holds the
//! charge (`in_review`) until `ReviewClosed` approves it (then it is charged) or rejects it (then
//! it fails with `review_rejected`, the gateway never called); a `block` fails it at once with
//! `fraud_blocked`. A review on the gateway's risk level holds an authorization instead (see
//! `authorization`): approving captures it, rejecting cancels it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use ledger::event::{ExpectedVersion, Metadata};
use ledger::ids::ChargeId;
use ledger::store::AppendError;
use serde::{Deserialize, Serialize};

use super::fraud::{Assessment, FraudDecision, FraudRules, RiskFacts};
use super::service::{Loaded, append_failure, apply as fold, stream_of};
use super::{
    Charge, ChargeError, ChargeEvent, ChargeResult, ChargeService, ChargeStatus, IdempotencyDraft,
    Render,
};
use crate::error::CommandError;

/// Past this many counted keys, keys idle for an hour are swept at the next count.
const SWEEP_ABOVE_KEYS: usize = 10_000;

/// The failure code of a charge blocked by screening.
pub const FRAUD_BLOCKED: &str = "fraud_blocked";
/// The failure code of a charge rejected in review.
pub const REVIEW_REJECTED: &str = "review_rejected";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FraudAssessed {
    pub charge_id: ChargeId,
    pub decision: FraudDecision,
    /// The rules that fired.
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewClosed {
    pub charge_id: ChargeId,
    pub approved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewEvent {
    Assessed(FraudAssessed),
    Closed(ReviewClosed),
}

/// The events screening adds to a just-requested charge. Pure.
pub fn decide_assessment(charge: &Charge, a: &Assessment) -> Vec<ChargeEvent> {
    let mut events = vec![ChargeEvent::Review(ReviewEvent::Assessed(FraudAssessed {
        charge_id: charge.id,
        decision: a.decision,
        rules: a.rules.clone(),
    }))];
    if a.decision == FraudDecision::Block {
        events.push(failed(
            charge.id,
            FRAUD_BLOCKED,
            &format!("Blocked by fraud rules: {}.", a.rules.join(", ")),
        ));
    }
    events
}

/// The events closing the review of `charge` adds; none when it is closed that way already.
///
/// # Errors
/// The charge is not (and was not) in review, or was closed the other way.
pub fn decide_close(charge: &Charge, approved: bool) -> Result<Vec<ChargeEvent>, ChargeError> {
    match (charge.status, charge.review_closed) {
        (ChargeStatus::InReview, None) => {
            let mut events = vec![ChargeEvent::Review(ReviewEvent::Closed(ReviewClosed {
                charge_id: charge.id,
                approved,
            }))];
            // An authorization is canceled at the gateway first; the failure follows.
            if !approved && !charge.authorized {
                events.push(failed(charge.id, REVIEW_REJECTED, "Rejected in review."));
            }
            Ok(events)
        }
        (_, Some(closed)) if closed == approved => Ok(Vec::new()),
        _ => Err(ChargeError::NotInReview(charge.id)),
    }
}

fn failed(charge_id: ChargeId, code: &str, message: &str) -> ChargeEvent {
    ChargeEvent::Failed(super::ChargeFailed {
        charge_id,
        gateway_charge_id: None,
        failure_code: code.to_string(),
        failure_message: message.to_string(),
    })
}

/// Folds a review event into its charge.
pub(super) fn apply(c: &mut Charge, e: &ReviewEvent) {
    match e {
        ReviewEvent::Assessed(a) => {
            c.fraud = Some(Assessment {
                decision: a.decision,
                rules: a.rules.clone(),
            });
            if a.decision == FraudDecision::Review {
                c.status = ChargeStatus::InReview;
            }
        }
        ReviewEvent::Closed(r) => {
            c.review_closed = Some(r.approved);
            // Approved: to be charged (or captured); a rejected authorization: to be canceled.
            if r.approved || c.authorized {
                c.status = ChargeStatus::Pending;
            }
        }
    }
}

/// Screening as configured, with the attempts of the last hour (kept in this process: a velocity
/// limit counts what this process saw since it started).
#[derive(Debug, Default)]
pub struct Screening {
    pub rules: FraudRules,
    attempts: Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>,
}

impl Screening {
    pub fn new(rules: FraudRules) -> Self {
        Self {
            rules,
            attempts: Mutex::default(),
        }
    }

    /// How many attempts each of `keys` had in the hour before `now`; with `record`, this one
    /// counts too. Keys with no attempt left in the hour are dropped, so memory follows the
    /// last hour's traffic.
    pub fn count(&self, keys: &[Option<String>], now: DateTime<Utc>, record: bool) -> Vec<u32> {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let since = now - Duration::hours(1);
        if attempts.len() > SWEEP_ABOVE_KEYS {
            attempts.retain(|_, seen| seen.back().is_some_and(|t| *t > since));
        }
        keys.iter()
            .map(|key| {
                let Some(key) = key else { return 0 };
                let seen = attempts.entry(key.clone()).or_default();
                while seen.front().is_some_and(|t| *t <= since) {
                    seen.pop_front();
                }
                let before = u32::try_from(seen.len()).unwrap_or(u32::MAX);
                if record {
                    seen.push_back(now);
                } else if seen.is_empty() {
                    attempts.remove(key);
                }
                before
            })
            .collect()
    }

    fn keys(charge: &Charge) -> [Option<String>; 2] {
        [
            charge.customer_id.map(|c| format!("customer:{c}")),
            Some(format!("method:{}", charge.payment_method)),
        ]
    }

    /// The facts of an attempt (not counted yet: see [`Screening::record`]).
    pub fn facts(&self, charge: &Charge, mut facts: RiskFacts, now: DateTime<Utc>) -> RiskFacts {
        let counts = self.count(&Self::keys(charge), now, false);
        facts.customer_attempts_last_hour = counts[0];
        facts.method_attempts_last_hour = counts[1];
        facts
    }

    /// Counts a charge attempt once it is recorded (a retry of the same request is not another
    /// attempt).
    pub fn record(&self, charge: &Charge, now: DateTime<Utc>) {
        self.count(&Self::keys(charge), now, true);
    }
}

impl ChargeService {
    /// Approves (then charges) or rejects (then fails) a charge held for review. Closing it again
    /// the same way returns the charge as it is.
    ///
    /// # Errors
    /// An unknown charge; one not in review or closed the other way; store failures.
    pub async fn close_review(
        &self,
        id: ChargeId,
        approved: bool,
        metadata: Metadata,
        idempotency: Option<IdempotencyDraft>,
        render: &Render,
    ) -> Result<ChargeResult, CommandError> {
        let stream = stream_of(id)?;
        let mut loaded: Loaded = self.load(&stream).await?;
        loop {
            let Some(charge) = loaded.charge.clone() else {
                return Err(ChargeError::NotRequested.into());
            };
            let events = decide_close(&charge, approved)?;
            if events.is_empty() {
                break;
            }
            let now = self.clock.now();
            let expected = ExpectedVersion::Exact(loaded.version);
            match self
                .append(&stream, expected, &events, now, &metadata, None)
                .await
            {
                Ok(position) => {
                    loaded = Loaded {
                        charge: fold(Some(charge), &events, now),
                        version: loaded.version + i64::try_from(events.len()).unwrap_or(0),
                        position,
                    };
                    break;
                }
                Err(AppendError::WrongExpectedVersion { .. }) => {
                    loaded = self.load(&stream).await?
                }
                Err(e) => return Err(append_failure(e)),
            }
        }
        // Approved: charged now (or completed, if a retry finds it charged already).
        self.complete(&stream, loaded, metadata, idempotency, render, &[])
            .await
    }
}

/// The events screening adds to a just-requested charge under `rules` (none when no rule is on).
pub fn screened(charge: &Charge, rules: &FraudRules, facts: &RiskFacts) -> Vec<ChargeEvent> {
    if !rules.enabled() {
        return Vec::new();
    }
    decide_assessment(charge, &super::fraud::assess(rules, charge.amount, facts))
}
