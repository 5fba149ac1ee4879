//! Test clocks (Stripe's): a frozen time that customers are attached to at creation. Their
//! subscriptions are billed by this time, and advancing it runs every renewal, trial end and
//! payment retry that falls due on the way, in time order (see [`crate::billing`]).

use chrono::{DateTime, TimeDelta, Utc};
use ledger::ids::{SubscriptionId, TestClockId};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::stored::{DomainEvent, from_json, to_json};

/// Farthest one advance may move a clock (Stripe allows two intervals of the longest plan).
pub const ADVANCE_MAX_DAYS: i64 = 2 * 366;
/// Most subscriptions on one clock.
pub const SUBSCRIPTIONS_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestClockCreated {
    pub test_clock_id: TestClockId,
    pub frozen_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestClockAdvanced {
    pub test_clock_id: TestClockId,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestClockSubscriptionAdded {
    pub test_clock_id: TestClockId,
    pub subscription_id: SubscriptionId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestClockEvent {
    Created(TestClockCreated),
    Advanced(TestClockAdvanced),
    SubscriptionAdded(TestClockSubscriptionAdded),
}

impl DomainEvent for TestClockEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TestClockEvent::Created(_) => "TestClockCreated",
            TestClockEvent::Advanced(_) => "TestClockAdvanced",
            TestClockEvent::SubscriptionAdded(_) => "TestClockSubscriptionAdded",
        }
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            TestClockEvent::Created(e) => to_json(e),
            TestClockEvent::Advanced(e) => to_json(e),
            TestClockEvent::SubscriptionAdded(e) => to_json(e),
        }
    }

    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        match event_type {
            "TestClockCreated" => from_json(payload).map(TestClockEvent::Created),
            "TestClockAdvanced" => from_json(payload).map(TestClockEvent::Advanced),
            "TestClockSubscriptionAdded" => {
                from_json(payload).map(TestClockEvent::SubscriptionAdded)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestClock {
    pub id: TestClockId,
    pub name: Option<String>,
    pub frozen_time: DateTime<Utc>,
    pub subscriptions: Vec<SubscriptionId>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestClockCommand {
    Create {
        test_clock_id: TestClockId,
        frozen_time: DateTime<Utc>,
        name: Option<String>,
    },
    /// Records the new time, after the jobs due up to it have run.
    Advance {
        to: DateTime<Utc>,
    },
    AddSubscription(SubscriptionId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TestClockError {
    #[error("no such test clock")]
    NotFound,
    #[error("test clock {0} exists already")]
    AlreadyExists(TestClockId),
    #[error("frozen_time must move forward, from {from} by at most {ADVANCE_MAX_DAYS} days")]
    AdvanceInvalid { from: DateTime<Utc> },
    #[error("name must be at most 300 characters")]
    NameInvalid,
    #[error("at most {SUBSCRIPTIONS_MAX} subscriptions per test clock")]
    TooManySubscriptions,
}

impl TestClock {
    /// Checks that the clock may move to `to`.
    ///
    /// # Errors
    /// [`TestClockError::AdvanceInvalid`] unless `frozen_time < to ≤ frozen_time + 732 days`.
    pub fn check_advance(&self, to: DateTime<Utc>) -> Result<(), TestClockError> {
        let limit = self
            .frozen_time
            .checked_add_signed(TimeDelta::days(ADVANCE_MAX_DAYS))
            .unwrap_or(self.frozen_time);
        if to <= self.frozen_time || to > limit {
            return Err(TestClockError::AdvanceInvalid {
                from: self.frozen_time,
            });
        }
        Ok(())
    }
}

impl Aggregate for TestClock {
    type Event = TestClockEvent;
    type Command = TestClockCommand;
    type Error = TestClockError;
    const CATEGORY: &'static str = "test_clock";

    fn decide(
        state: Option<&TestClock>,
        command: TestClockCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<TestClockEvent>, TestClockError> {
        match (state, command) {
            (Some(c), TestClockCommand::Create { .. }) => Err(TestClockError::AlreadyExists(c.id)),
            (
                None,
                TestClockCommand::Create {
                    test_clock_id,
                    frozen_time,
                    name,
                },
            ) => {
                if name.as_ref().is_some_and(|n| n.chars().count() > 300) {
                    return Err(TestClockError::NameInvalid);
                }
                Ok(vec![TestClockEvent::Created(TestClockCreated {
                    test_clock_id,
                    frozen_time,
                    name,
                })])
            }
            (None, _) => Err(TestClockError::NotFound),
            (Some(c), TestClockCommand::Advance { to }) => {
                c.check_advance(to)?;
                Ok(vec![TestClockEvent::Advanced(TestClockAdvanced {
                    test_clock_id: c.id,
                    from: c.frozen_time,
                    to,
                })])
            }
            (Some(c), TestClockCommand::AddSubscription(sub)) if c.subscriptions.contains(&sub) => {
                Ok(vec![])
            }
            (Some(c), TestClockCommand::AddSubscription(_))
                if c.subscriptions.len() >= SUBSCRIPTIONS_MAX =>
            {
                Err(TestClockError::TooManySubscriptions)
            }
            (Some(c), TestClockCommand::AddSubscription(subscription_id)) => {
                Ok(vec![TestClockEvent::SubscriptionAdded(
                    TestClockSubscriptionAdded {
                        test_clock_id: c.id,
                        subscription_id,
                    },
                )])
            }
        }
    }

    fn evolve(
        state: Option<TestClock>,
        event: &TestClockEvent,
        at: DateTime<Utc>,
    ) -> Option<TestClock> {
        match (state, event) {
            (None, TestClockEvent::Created(e)) => Some(TestClock {
                id: e.test_clock_id,
                name: e.name.clone(),
                frozen_time: e.frozen_time,
                subscriptions: vec![],
                created: at,
            }),
            (Some(mut c), TestClockEvent::Advanced(e)) => {
                c.frozen_time = e.to;
                Some(c)
            }
            (Some(mut c), TestClockEvent::SubscriptionAdded(e)) => {
                c.subscriptions.push(e.subscription_id);
                Some(c)
            }
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap()
    }

    fn clock() -> TestClock {
        let id = TestClockId::new();
        let create = TestClockCommand::Create {
            test_clock_id: id,
            frozen_time: t(1),
            name: None,
        };
        let events = TestClock::decide(None, create, t(20)).unwrap();
        events
            .iter()
            .fold(None, |s, e| TestClock::evolve(s, e, t(20)))
            .unwrap()
    }

    #[test]
    fn a_clock_only_moves_forward_and_not_too_far() {
        let c = clock();
        assert!(c.check_advance(t(1)).is_err());
        assert!(c.check_advance(t(2)).is_ok());
        assert!(
            c.check_advance(t(1) + TimeDelta::days(ADVANCE_MAX_DAYS + 1))
                .is_err()
        );
        let events =
            TestClock::decide(Some(&c), TestClockCommand::Advance { to: t(5) }, t(20)).unwrap();
        let c = TestClock::evolve(Some(c), &events[0], t(20)).unwrap();
        assert_eq!(c.frozen_time, t(5));
    }

    #[test]
    fn a_subscription_is_added_once() {
        let c = clock();
        let sub = SubscriptionId::new();
        let events =
            TestClock::decide(Some(&c), TestClockCommand::AddSubscription(sub), t(2)).unwrap();
        let c = TestClock::evolve(Some(c), &events[0], t(2)).unwrap();
        assert!(
            TestClock::decide(Some(&c), TestClockCommand::AddSubscription(sub), t(2))
                .unwrap()
                .is_empty()
        );
        assert_eq!(c.subscriptions, vec![sub]);
    }
}
