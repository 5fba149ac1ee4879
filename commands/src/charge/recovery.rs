//! Completing charges and refunds whose gateway outcome was never recorded (a crash, a timeout,
//! a store outage between the gateway call and the outcome event).
//!
//! A [`RecoveryScan`] follows the log and remembers what is pending; [`ChargeService::recover`]
//! calls the gateway again for whatever has been pending longer than a grace period — with the
//! same gateway idempotency key, so money moves at most once — and records the outcome. Running
//! it twice, or in two processes at once, records each outcome once (the expected version).
//!
//! The scan knows where everything before it is settled ([`RecoveryScan::settled_position`]);
//! `billing serve` saves that and a new process resumes there instead of reading the whole log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger::event::{Metadata, Position, RecordedEvent};
use ledger::ids::{ChargeId, RefundId};
use ledger::store::{EventStore, StoreError, read_categories};

use super::service::stream_of;
use super::{ChargeEvent, ChargeService, ChargeStatus, refund::RefundStatus};
use crate::error::CommandError;
use crate::stored::DomainEvent;

/// Events read per page while scanning.
const SCAN_PAGE_EVENTS: u32 = 1_000;

/// What is pending, as seen in the log so far: when, and the position of the event that made
/// it pending.
#[derive(Debug, Default)]
pub struct RecoveryScan {
    after: Position,
    charges: BTreeMap<ChargeId, (DateTime<Utc>, Position)>,
    refunds: BTreeMap<(ChargeId, RefundId), (DateTime<Utc>, Position)>,
}

/// What one recovery run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub charges_completed: usize,
    pub refunds_completed: usize,
    /// Still without an outcome (the gateway did not answer, or too recent).
    pub still_pending: usize,
}

impl RecoveryScan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the log from where the scan stopped.
    pub async fn catch_up(&mut self, store: &dyn EventStore) -> Result<(), StoreError> {
        // Only the charges' streams: the rest of the log is skipped by the store.
        loop {
            let page = read_categories(store, self.after, SCAN_PAGE_EVENTS, &["charge"]).await?;
            for e in &page.events {
                self.observe(e);
            }
            self.after = self.after.max(page.through);
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Starts reading after `position` (a [`settled_position`](Self::settled_position) saved
    /// by an earlier process); never moves back.
    pub fn resume_after(&mut self, position: Position) {
        self.after = self.after.max(position);
    }

    /// Before this position nothing is pending any more (as far as the scan has read): a scan
    /// resuming after it finds everything still pending again.
    pub fn settled_position(&self) -> Position {
        self.charges
            .values()
            .chain(self.refunds.values())
            .map(|(_, p)| Position(p.0.saturating_sub(1)))
            .fold(self.after, std::cmp::min)
    }

    fn observe(&mut self, recorded: &RecordedEvent) {
        if recorded.stream_id.category() != "charge" {
            return;
        }
        let Some(event) = ChargeEvent::from_stored(&recorded.event_type, &recorded.payload) else {
            return;
        };
        let at = (recorded.recorded_at, recorded.position);
        use super::refund::RefundEvent as R;
        match event {
            ChargeEvent::Requested(e) => {
                self.charges.insert(e.charge_id, at);
            }
            ChargeEvent::Succeeded(e) => {
                self.charges.remove(&e.charge_id);
            }
            // Taken in by the gateway: its webhook settles it; asking again is not needed.
            ChargeEvent::Processing(e) => {
                self.charges.remove(&e.charge_id);
            }
            ChargeEvent::Failed(e) => {
                self.charges.remove(&e.charge_id);
            }
            ChargeEvent::Refund(R::Requested(e)) => {
                self.refunds.insert((e.charge_id, e.refund_id), at);
            }
            ChargeEvent::Refund(R::Succeeded(e)) => {
                self.refunds.remove(&(e.charge_id, e.refund_id));
            }
            ChargeEvent::Refund(R::Failed(e)) => {
                self.refunds.remove(&(e.charge_id, e.refund_id));
            }
            // Held for review: not to be charged until approved. (A block before the gateway
            // fails the charge in the same append; one on an authorization leaves it pending,
            // to be canceled.)
            ChargeEvent::Review(super::review::ReviewEvent::Assessed(e)) => {
                if e.decision == super::fraud::FraudDecision::Review {
                    self.charges.remove(&e.charge_id);
                }
            }
            // Approved: to be charged; rejected: an authorization to cancel (a charge never sent
            // fails in the same append).
            ChargeEvent::Review(super::review::ReviewEvent::Closed(e)) => {
                self.charges.insert(e.charge_id, at);
            }
            ChargeEvent::Dispute(_) | ChargeEvent::FailedOver(_) | ChargeEvent::Authorized(_) => {}
        }
    }

    pub fn pending(&self) -> usize {
        self.charges.len() + self.refunds.len()
    }
}

impl ChargeService {
    /// Completes what has been pending since before `older_than`.
    pub async fn recover(
        &self,
        store: &dyn EventStore,
        scan: &mut RecoveryScan,
        older_than: DateTime<Utc>,
    ) -> Result<RecoveryReport, CommandError> {
        scan.catch_up(store).await?;
        let metadata = Metadata {
            actor: Some("recovery".to_string()),
            ..Metadata::default()
        };
        let mut report = RecoveryReport::default();
        let due: Vec<ChargeId> = scan
            .charges
            .iter()
            .filter(|(_, (at, _))| *at < older_than)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            // One bad charge must not stop the others: log it and go on.
            match self.resume_charge(id, &metadata, &super::unrendered).await {
                Ok(true) => report.charges_completed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(charge_id = %id, error = %e, "recovery could not complete a charge")
                }
            }
        }
        let no_render_refund = |c: &super::Charge, _: RefundId| super::unrendered(c);
        let due: Vec<(ChargeId, RefundId)> = scan
            .refunds
            .iter()
            .filter(|(_, (at, _))| *at < older_than)
            .map(|(k, _)| *k)
            .collect();
        for (charge_id, refund_id) in due {
            match self
                .resume_refund(charge_id, refund_id, &metadata, &no_render_refund)
                .await
            {
                Ok(true) => report.refunds_completed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(%refund_id, error = %e, "recovery could not complete a refund")
                }
            }
        }
        scan.catch_up(store).await?;
        report.still_pending = scan.pending();
        Ok(report)
    }

    /// Completes one pending charge; true when it has an outcome now.
    async fn resume_charge(
        &self,
        id: ChargeId,
        metadata: &Metadata,
        render: &super::Render,
    ) -> Result<bool, CommandError> {
        let stream = stream_of(id)?;
        let loaded = self.load(&stream).await?;
        let result = self
            .complete(&stream, loaded, metadata.clone(), None, render, &[])
            .await?;
        Ok(result.charge.status != ChargeStatus::Pending)
    }

    /// Completes one pending refund; true when it has an outcome now.
    async fn resume_refund(
        &self,
        charge_id: ChargeId,
        refund_id: RefundId,
        metadata: &Metadata,
        render: &super::RenderRefund,
    ) -> Result<bool, CommandError> {
        let stream = stream_of(charge_id)?;
        let loaded = self.load(&stream).await?;
        let result = self
            .complete_refund(&stream, loaded, refund_id, metadata.clone(), None, render)
            .await?;
        Ok(result
            .charge
            .refund(refund_id)
            .is_some_and(|r| r.status != RefundStatus::Pending))
    }
}
