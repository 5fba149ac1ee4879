//! The scheduler: runs the renewals, trial ends and payment retries that fall due on the billing
//! clock, for subscriptions that are not on a test clock (those move with their clock).
//!
//! It keeps, in memory, when each subscription is next due. It learns about subscriptions by
//! tailing the log (from the start when it starts; the read models of "Projections" will spare
//! that scan) and re-evaluates a subscription whenever its stream or one of its invoices moves.
//! Jobs are idempotent (keyed by subscription and period, or invoice and attempt), so two
//! schedulers, or a job run twice, change nothing more; one active instance is still the rule
//! (`AnyStore::try_lead`), to avoid doing the work twice.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use ledger::event::{Metadata, Position};
use ledger::ids::SubscriptionId;
use ledger::store::StoreError;

use super::Billing;
use crate::error::CommandError;
use crate::subscription::Subscription;

/// Events read per page while catching up.
const PAGE: u32 = 1_000;

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub jobs_run: usize,
    pub jobs_failed: usize,
}

/// The scheduler's memory: how far it has read the log, and when each subscription is due.
pub struct Scheduler {
    billing: Billing,
    read_to: Position,
    /// Subscriptions on the billing clock, with their next due time (`None`: nothing due).
    due: HashMap<SubscriptionId, Option<DateTime<Utc>>>,
    /// Subscriptions of customers on a test clock: never run here.
    on_test_clock: HashSet<SubscriptionId>,
    dirty: HashSet<SubscriptionId>,
}

impl Scheduler {
    pub fn new(billing: Billing) -> Self {
        Self {
            billing,
            read_to: Position::START,
            due: HashMap::new(),
            on_test_clock: HashSet::new(),
            dirty: HashSet::new(),
        }
    }

    /// Runs everything due at `now`, earliest first; each job at `now`'s business time.
    /// A job that fails is logged and tried again at the next tick.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Tick, CommandError> {
        self.catch_up().await?;
        let dirty: Vec<SubscriptionId> = self.dirty.iter().copied().collect();
        for id in dirty {
            // Taken out of `dirty` only once evaluated: a store error keeps it for the next tick.
            let next = self.next_due(id).await?;
            self.due.insert(id, next);
            self.dirty.remove(&id);
        }
        let mut ready: Vec<(DateTime<Utc>, SubscriptionId)> = self
            .due
            .iter()
            .filter_map(|(id, due)| due.filter(|t| *t <= now).map(|t| (t, *id)))
            .collect();
        ready.sort();
        let mut tick = Tick::default();
        let at = self.billing.at(now);
        let metadata = Metadata {
            actor: Some("scheduler".into()),
            ..Metadata::default()
        };
        for (_, id) in ready {
            let Some(sub) = at.executor.load::<Subscription>(&id).await?.state else {
                continue;
            };
            for (due, job) in at.jobs_of(&sub).await? {
                if due > now {
                    continue;
                }
                match at.run_job(job, &metadata).await {
                    Ok(()) => tick.jobs_run += 1,
                    Err(e) => {
                        tick.jobs_failed += 1;
                        tracing::warn!(subscription = %id, ?job, error = %e, "scheduled job failed; retried next tick");
                    }
                }
            }
            self.dirty.insert(id);
        }
        Ok(tick)
    }

    async fn next_due(&self, id: SubscriptionId) -> Result<Option<DateTime<Utc>>, CommandError> {
        let Some(sub) = self.billing.executor.load::<Subscription>(&id).await?.state else {
            return Ok(None);
        };
        Ok(self
            .billing
            .jobs_of(&sub)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .min())
    }

    /// Reads the log since the last tick: new subscriptions, and the subscriptions whose stream
    /// or invoices moved.
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        let store = self.billing.executor.store().clone();
        loop {
            // Only subscriptions' and invoices' streams: the rest is skipped by the store.
            let page = store
                .read_categories(self.read_to, PAGE, &["subscription", "invoice"])
                .await?;
            for e in &page.events {
                // Moved per event: a store error midway resumes at the event it stopped on.
                let next = e.position;
                let sub = match e.stream_id.category() {
                    "subscription" => e.payload["subscription_id"].as_str(),
                    "invoice" => e.payload["subscription_id"].as_str(),
                    _ => None,
                };
                if let Some(id) = sub.and_then(|s| s.parse::<SubscriptionId>().ok())
                    && !self.on_test_clock.contains(&id)
                {
                    if e.event_type == "SubscriptionCreated"
                        && self.customer_on_test_clock(e).await?
                    {
                        self.on_test_clock.insert(id);
                    } else {
                        self.dirty.insert(id);
                    }
                }
                self.read_to = next;
            }
            self.read_to = self.read_to.max(page.through);
            if !page.more {
                return Ok(());
            }
        }
    }

    async fn customer_on_test_clock(
        &self,
        created: &ledger::event::RecordedEvent,
    ) -> Result<bool, StoreError> {
        let Some(customer) = created.payload["customer_id"]
            .as_str()
            .and_then(|c| c.parse::<ledger::ids::CustomerId>().ok())
        else {
            return Ok(false);
        };
        let loaded = self
            .billing
            .executor
            .load::<crate::customer::Customer>(&customer)
            .await?;
        Ok(loaded.state.is_some_and(|c| c.test_clock.is_some()))
    }
}
