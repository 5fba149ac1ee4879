//! The webhook reactor: turns recorded gateway events (`GatewayEventReceived`, the inbox) into
//! domain events on our charges, each with the received event as its `causation_id`.
//!
//! It runs right after a delivery is recorded and again over the log in the background (a
//! delivery recorded by a process that died before reacting is not lost); the background pass
//! saves how far it has settled ([`Reactor::settled_position`]) and a new process resumes there. Reacting twice to one
//! delivery adds nothing: every report is decided against the charge's current state
//! ([`decide_report`](crate::charge::decide_report)). Order does not matter either: a
//! `payment_intent.succeeded` that arrives while our own call to Stripe is still out completes
//! the pending charge, and our own outcome then finds it completed.
//!
//! Types we do not act on are recorded and left alone.

mod index;
pub mod paypal;
pub mod stripe;

use std::sync::Arc;

use ledger::event::{Metadata, Position, RecordedEvent};
use ledger::ids::ChargeId;
use ledger::store::EventStore;
use tokio::sync::Mutex;

use crate::charge::{ChargeError, ChargeService, ChargeStatus, GatewayReport};
use crate::error::CommandError;
use crate::gateway_event::{GatewayEventReceived, RECEIVED};

/// Deliveries read per page in the background pass.
const PAGE: u32 = 500;

/// Which of our charges a gateway event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRef {
    /// Ours, when the gateway echoes the key we sent (`metadata.billing_key`).
    pub charge_id: Option<ChargeId>,
    /// The gateway's ids for it (`pi_…`, `ch_…`), to look up otherwise.
    pub gateway_ids: Vec<String>,
}

impl ChargeRef {
    fn new<S: AsRef<str>>(
        billing_key: Option<&str>,
        gateway_ids: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            charge_id: billing_key
                .and_then(|k| k.strip_prefix("charge-"))
                .and_then(|id| id.parse().ok()),
            gateway_ids: gateway_ids
                .into_iter()
                .map(|s| s.as_ref().to_string())
                .collect(),
        }
    }
}

/// A gateway event, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Translated {
    Report(ChargeRef, GatewayReport),
    /// A type we do not act on.
    Ignored,
    /// A type we act on, but its object lacks what we need.
    Unreadable(String),
}

/// What reacting to one delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Events appended to the charge.
    Applied { charge_id: ChargeId, events: usize },
    /// The charge says as much already.
    AlreadyApplied { charge_id: ChargeId },
    /// No charge of ours matches (yet: the background pass tries again for an hour), or the
    /// charge it is about has no outcome recorded yet.
    Unmatched,
    /// A type we do not act on, or one we could not read.
    Ignored,
}

/// Reacts to recorded deliveries.
pub struct Reactor {
    charges: Arc<ChargeService>,
    store: Arc<dyn EventStore>,
    index: Mutex<index::ChargeIndex>,
    /// The background pass's position among `GatewayEventReceived` events.
    after: Mutex<Position>,
    /// Deliveries about no charge of ours yet (one may arrive before the charge's outcome is
    /// recorded): tried again on every pass for [`DEFER_FOR`].
    deferred: Mutex<Vec<RecordedEvent>>,
}

/// How long a delivery about an unknown charge is tried again.
const DEFER_FOR: chrono::Duration = chrono::Duration::hours(1);
/// At most this many deliveries wait at once (the oldest give way).
const DEFERRED_MAX: usize = 10_000;

impl Reactor {
    pub fn new(charges: Arc<ChargeService>, store: Arc<dyn EventStore>) -> Self {
        Self {
            charges,
            store,
            index: Mutex::default(),
            after: Mutex::new(Position::START),
            deferred: Mutex::default(),
        }
    }

    /// Reacts to one recorded `GatewayEventReceived`.
    ///
    /// # Errors
    /// Store failures (the background pass tries again).
    pub async fn react(&self, received: &RecordedEvent) -> Result<Reaction, CommandError> {
        match serde_json::from_value::<GatewayEventReceived>(received.payload.clone()) {
            Ok(delivery) => self.react_to(received.event_id, &delivery).await,
            Err(_) => Ok(Reaction::Ignored),
        }
    }

    /// Reacts to `delivery`, recorded as event `received`.
    ///
    /// # Errors
    /// Store failures (the background pass tries again).
    pub async fn react_to(
        &self,
        received: uuid::Uuid,
        delivery: &GatewayEventReceived,
    ) -> Result<Reaction, CommandError> {
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&delivery.body) else {
            return Ok(Reaction::Ignored);
        };
        let translated = match delivery.gateway.as_str() {
            "stripe" => stripe::translate(&delivery.gateway_event_id, &delivery.event_type, &body),
            "paypal" => paypal::translate(&delivery.gateway_event_id, &delivery.event_type, &body),
            _ => Translated::Ignored,
        };
        let (charge, report) = match translated {
            Translated::Report(c, r) => (c, r),
            Translated::Unreadable(why) => {
                tracing::warn!(event = %delivery.gateway_event_id, r#type = %delivery.event_type, %why, "gateway event not translated");
                return Ok(Reaction::Ignored);
            }
            Translated::Ignored => return Ok(Reaction::Ignored),
        };
        let Some(charge_id) = self.find(&delivery.gateway, &charge).await? else {
            tracing::info!(event = %delivery.gateway_event_id, r#type = %delivery.event_type, "gateway event about no charge of ours");
            return Ok(Reaction::Unmatched);
        };
        let metadata = Metadata {
            actor: Some(format!("reactor:{}", delivery.gateway)),
            causation_id: Some(received.to_string()),
            correlation_id: Some(delivery.gateway_event_id.clone()),
            ..Metadata::default()
        };
        match self
            .charges
            .apply_gateway_report(charge_id, &delivery.gateway, &report, &metadata)
            .await
        {
            // A refund or dispute of a charge whose own outcome is not recorded yet: too early.
            Ok((0, _, ChargeStatus::Pending))
                if matches!(
                    report,
                    GatewayReport::Refunded { .. } | GatewayReport::Dispute(_)
                ) =>
            {
                Ok(Reaction::Unmatched)
            }
            Ok((0, _, status)) => {
                // The gateway says the money was taken where we recorded a failure: nothing can
                // be decided for it automatically — say so loudly for a person to reconcile.
                if matches!(report, GatewayReport::Succeeded { .. })
                    && status == ChargeStatus::Failed
                {
                    tracing::error!(%charge_id, event = %delivery.gateway_event_id, "the gateway reports a charge succeeded that is recorded as failed: reconcile it by hand");
                    metrics::counter!("billing_gateway_disagreements_total").increment(1);
                }
                // Captured at the gateway (its dashboard) while held in review here: approving
                // will find it captured; rejecting will not undo it.
                if matches!(report, GatewayReport::Succeeded { .. })
                    && status == ChargeStatus::InReview
                {
                    tracing::error!(%charge_id, event = %delivery.gateway_event_id, "the gateway reports a charge captured that is held in review here: decide the review (approve records it; reject needs a refund)");
                    metrics::counter!("billing_gateway_disagreements_total").increment(1);
                }
                Ok(Reaction::AlreadyApplied { charge_id })
            }
            Ok((events, _, _)) => Ok(Reaction::Applied { charge_id, events }),
            Err(CommandError::Charge(ChargeError::NotRequested)) => Ok(Reaction::Unmatched),
            Err(e) => Err(e),
        }
    }

    /// Reacts to every delivery recorded since the last pass. Returns how many were read.
    ///
    /// # Errors
    /// Store failures; the next pass starts where this one stopped.
    pub async fn catch_up(&self) -> Result<usize, CommandError> {
        let mut after = self.after.lock().await;
        self.retry_deferred().await?;
        let mut seen = 0;
        loop {
            let page = self
                .store
                .read_page_filtered(*after, PAGE, None, Some(RECEIVED))
                .await?;
            let Some(last) = page.last().map(|e| e.position) else {
                return Ok(seen);
            };
            for e in &page {
                if self.react(e).await? == Reaction::Unmatched {
                    let mut deferred = self.deferred.lock().await;
                    if deferred.len() >= DEFERRED_MAX {
                        deferred.remove(0);
                    }
                    deferred.push(e.clone());
                }
            }
            seen += page.len();
            *after = last;
        }
    }

    /// Reacts again to deliveries that matched no charge, for up to [`DEFER_FOR`] after they
    /// were recorded.
    async fn retry_deferred(&self) -> Result<(), CommandError> {
        let waiting = std::mem::take(&mut *self.deferred.lock().await);
        let now = chrono::Utc::now();
        let mut still = Vec::new();
        let mut waiting = waiting.into_iter();
        while let Some(e) = waiting.next() {
            if now - e.recorded_at > DEFER_FOR {
                tracing::warn!(event = %e.event_id, "gateway event matched no charge of ours within an hour; left recorded only");
                continue;
            }
            match self.react(&e).await {
                Ok(Reaction::Unmatched) => still.push(e),
                Ok(_) => {}
                Err(err) => {
                    still.push(e);
                    still.extend(waiting);
                    self.deferred.lock().await.extend(still);
                    return Err(err);
                }
            }
        }
        self.deferred.lock().await.extend(still);
        Ok(())
    }

    /// Starts the background pass after `position` (a cursor an earlier process saved, see
    /// [`Reactor::settled_position`]); never moves it back.
    pub async fn resume_after(&self, position: Position) {
        let mut after = self.after.lock().await;
        if position > *after {
            *after = position;
        }
    }

    /// Up to where every delivery has been reacted to for good: the background pass's
    /// position, held back before the earliest delivery still waiting for its charge (a process
    /// resuming there meets it again).
    pub async fn settled_position(&self) -> Position {
        let after = *self.after.lock().await;
        let deferred = self.deferred.lock().await;
        deferred
            .iter()
            .map(|e| Position(e.position.0.saturating_sub(1)))
            .fold(after, std::cmp::min)
    }

    /// Deliveries waiting for their charge.
    pub async fn deferred(&self) -> usize {
        self.deferred.lock().await.len()
    }

    async fn find(
        &self,
        gateway: &str,
        charge: &ChargeRef,
    ) -> Result<Option<ChargeId>, CommandError> {
        if let Some(id) = charge.charge_id {
            return Ok(Some(id));
        }
        let mut index = self.index.lock().await;
        index.catch_up(self.store.as_ref()).await?;
        Ok(charge
            .gateway_ids
            .iter()
            .find_map(|g| index.get(gateway, g)))
    }
}
