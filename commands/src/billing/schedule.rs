//! What falls due, and running it: renewals (licensed in advance, metered in arrears), trial
//! ends, payment retries. Each job is idempotent — keyed by (subscription, period) or
//! (invoice, attempt) — so running it twice, or in two processes, changes nothing more.
//! Test clocks run the jobs of their subscriptions in time order when advanced.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use ledger::event::Metadata;
use ledger::ids::{InvoiceId, SubscriptionId, TestClockId};

use super::Billing;
use super::invoicing::Reply;
use crate::aggregate::{Aggregate, Executed};
use crate::charge::{Rendered, unrendered};
use crate::error::CommandError;
use crate::invoice::{BillingReason, Invoice, InvoiceStatus};
use crate::subscription::{
    Subscription, SubscriptionCommand, SubscriptionEvent, SubscriptionStatus, invoice_for_change,
    invoice_for_period, next_due,
};
use crate::test_clock::{TestClock, TestClockCommand, TestClockError};

/// Seconds an unresolved payment attempt is left to the request that made it before a job
/// completes it (as the recovery of pending charges waits too).
const UNRESOLVED_GRACE_S: i64 = 60;

/// Most jobs one advance runs (a year of weekly renewals with retries is far below).
const ADVANCE_JOBS_MAX: usize = 10_000;

/// A job of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Renew (or end the trial of, or cancel at period end) the period starting at `period_start`.
    Renew {
        subscription_id: SubscriptionId,
        period_start: DateTime<Utc>,
    },
    /// Retry the payment of an open invoice.
    RetryPayment { invoice_id: InvoiceId, attempt: u32 },
    /// Draft (and settle) an invoice the subscription recorded as asked for but that was never
    /// drafted (a crash or a store error between the two).
    DraftMissing {
        subscription_id: SubscriptionId,
        invoice_id: InvoiceId,
    },
}

impl Billing {
    /// The jobs of one subscription with their due times: its next renewal, and the next
    /// payment retry of each of its invoices that failed and is still open.
    ///
    /// # Errors
    /// Store failures.
    pub async fn jobs_of(
        &self,
        sub: &Subscription,
    ) -> Result<Vec<(DateTime<Utc>, Job)>, CommandError> {
        let mut jobs = vec![];
        if let Some((due, d)) = next_due(sub) {
            let SubscriptionCommand::Renew { period_start } = d.command() else {
                unreachable!("next_due answers renewals")
            };
            jobs.push((
                due,
                Job::Renew {
                    subscription_id: sub.id,
                    period_start,
                },
            ));
        }
        if matches!(sub.status, SubscriptionStatus::Canceled) {
            return Ok(jobs);
        }
        let mut invoices: HashSet<InvoiceId> =
            sub.failed_attempts.iter().map(|(i, _)| *i).collect();
        invoices.extend(sub.latest_invoice);
        for id in invoices {
            let Some(invoice) = self.executor.load::<Invoice>(&id).await?.state else {
                if sub.latest_invoice == Some(id) {
                    let job = Job::DraftMissing {
                        subscription_id: sub.id,
                        invoice_id: id,
                    };
                    jobs.push((sub.current_period_start, job));
                }
                continue;
            };
            if invoice.status != InvoiceStatus::Open {
                continue;
            }
            if let Some(attempt) = invoice.unresolved_attempt() {
                // A payment whose outcome was never recorded: complete it once it is older
                // than the grace a request in flight may still need.
                let since = invoice.last_attempt_at.unwrap_or(invoice.created);
                let due = since
                    .checked_add_signed(chrono::TimeDelta::seconds(UNRESOLVED_GRACE_S))
                    .unwrap_or(since);
                jobs.push((
                    due,
                    Job::RetryPayment {
                        invoice_id: id,
                        attempt,
                    },
                ));
            } else if let Some(at) = invoice.next_payment_attempt {
                let attempt = invoice.attempt_count.saturating_add(1);
                jobs.push((
                    at,
                    Job::RetryPayment {
                        invoice_id: id,
                        attempt,
                    },
                ));
            }
        }
        Ok(jobs)
    }

    /// Runs `job` at this billing's time.
    ///
    /// # Errors
    /// Domain refusals (the job is not due yet), store failures.
    pub async fn run_job(&self, job: Job, metadata: &Metadata) -> Result<(), CommandError> {
        match job {
            Job::Renew {
                subscription_id,
                period_start,
            } => self.renew(subscription_id, period_start, metadata).await,
            Job::DraftMissing {
                subscription_id,
                invoice_id,
            } => {
                self.draft_missing(subscription_id, invoice_id, metadata)
                    .await
            }
            Job::RetryPayment {
                invoice_id,
                attempt,
            } => {
                let invoice = self.load_invoice(invoice_id).await?;
                let next = invoice.attempt_count.saturating_add(1);
                let open = matches!(invoice.status, InvoiceStatus::Open);
                if open && (next == attempt || invoice.unresolved_attempt() == Some(attempt)) {
                    self.attempt_payment(&invoice, attempt, metadata, Reply::none())
                        .await?;
                }
                Ok(())
            }
        }
    }

    async fn renew(
        &self,
        id: SubscriptionId,
        period_start: DateTime<Utc>,
        metadata: &Metadata,
    ) -> Result<(), CommandError> {
        let command = SubscriptionCommand::Renew { period_start };
        let before = self
            .executor
            .load::<Subscription>(&id)
            .await?
            .state
            .ok_or(crate::subscription::SubscriptionError::NotFound)?;
        let customer = self.customer(before.customer_id).await?;
        let events = Subscription::decide(Some(&before), command.clone(), self.now())?;
        self.check_asked(id, before.currency(), &customer, &events)
            .await?;
        let done = self
            .executor
            .execute::<Subscription>(&id, command, metadata, None, &unrendered)
            .await?;
        let sub = done.state;
        // What this renewal bills, as recorded (also when an earlier run recorded it).
        let lines = self
            .recorded(id, |e| match e {
                SubscriptionEvent::Renewed(r) if r.period_start == period_start => {
                    Some(r.invoice_lines.clone())
                }
                SubscriptionEvent::Canceled(c) if c.at == period_start => {
                    Some(c.final_lines.clone())
                }
                _ => None,
            })
            .await?;
        let reason = BillingReason::SubscriptionCycle;
        let invoice = match sub.status {
            SubscriptionStatus::Canceled => sub
                .latest_invoice
                .unwrap_or_else(|| invoice_for_change(id, sub.version)),
            _ => invoice_for_period(id, period_start),
        };
        self.invoice_lines(&sub, &customer, invoice, reason, lines, metadata)
            .await
    }

    /// Advances a test clock to `to`: runs every job of its subscriptions due up to then, each
    /// at its own due time and in time order, then records the new time.
    ///
    /// # Errors
    /// [`TestClockError`] for a missing clock or a time that does not move forward (nothing
    /// runs then); failures of the jobs.
    pub async fn advance_clock(
        &self,
        id: TestClockId,
        to: DateTime<Utc>,
        metadata: &Metadata,
        draft: Option<&crate::charge::IdempotencyDraft>,
        render: &(dyn Fn(&TestClock) -> Rendered + Send + Sync),
    ) -> Result<Executed<TestClock>, CommandError> {
        let clock = self
            .executor
            .load::<TestClock>(&id)
            .await?
            .state
            .ok_or(TestClockError::NotFound)?;
        clock.check_advance(to)?;
        let mut ran = HashSet::new();
        for _ in 0..ADVANCE_JOBS_MAX {
            let mut next: Option<(DateTime<Utc>, Job)> = None;
            for sub in &clock.subscriptions {
                let Some(sub) = self.executor.load::<Subscription>(sub).await?.state else {
                    continue;
                };
                for (due, job) in self.jobs_of(&sub).await? {
                    let earlier = next.is_none_or(|(t, _)| due < t);
                    if due <= to && earlier && !ran.contains(&job) {
                        next = Some((due, job));
                    }
                }
            }
            let Some((due, job)) = next else { break };
            ran.insert(job);
            self.at(due.max(clock.frozen_time))
                .run_job(job, metadata)
                .await?;
        }
        self.at(to)
            .executor
            .execute::<TestClock>(
                &id,
                TestClockCommand::Advance { to },
                metadata,
                draft,
                render,
            )
            .await
    }

    /// Finds, in the subscription's stream, the event that asked for `invoice_id` and invoices
    /// its lines (nothing when the invoice exists by now).
    async fn draft_missing(
        &self,
        id: SubscriptionId,
        invoice_id: InvoiceId,
        metadata: &Metadata,
    ) -> Result<(), CommandError> {
        if self
            .executor
            .load::<Invoice>(&invoice_id)
            .await?
            .state
            .is_some()
        {
            return Ok(());
        }
        let stream = super::subscribing::stream(id)?;
        let recorded = self.executor.store().read_stream(&stream).await?;
        let events: Vec<SubscriptionEvent> = crate::stored::decode_stream(&recorded)?;
        let asked = events.iter().zip(&recorded).find_map(|(e, r)| {
            let (asked_id, reason, lines) = match e {
                SubscriptionEvent::Created(c) => (
                    invoice_for_period(id, c.current_period_start),
                    BillingReason::SubscriptionCreate,
                    c.invoice_lines.clone(),
                ),
                SubscriptionEvent::Renewed(r) => (
                    invoice_for_period(id, r.period_start),
                    BillingReason::SubscriptionCycle,
                    r.invoice_lines.clone(),
                ),
                other => {
                    let (reason, lines) = super::subscribing::invoiced_by(other)?;
                    (invoice_for_change(id, r.stream_version), reason, lines)
                }
            };
            (asked_id == invoice_id && !lines.is_empty()).then_some((reason, lines))
        });
        let Some((reason, lines)) = asked else {
            return Ok(());
        };
        let sub = self
            .executor
            .load::<Subscription>(&id)
            .await?
            .state
            .ok_or(crate::subscription::SubscriptionError::NotFound)?;
        let customer = self.customer(sub.customer_id).await?;
        self.invoice_lines(&sub, &customer, invoice_id, reason, lines, metadata)
            .await
    }
}
