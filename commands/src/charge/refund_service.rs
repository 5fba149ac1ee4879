//! Refunding a charge: reserve (`RefundRequested` under the charge's expected version, so
//! concurrent refunds can never add up beyond the captured amount), call the gateway with the
//! key `refund-<id>`, record the outcome with the idempotency record.

use std::time::Duration;

use gateways::{GatewayError, RefundRequest};
use ledger::event::{AppendRequest, ExpectedVersion, Metadata, Position, StreamId};
use ledger::ids::{ChargeId, RefundId};
use ledger::store::AppendError;

use super::refund::{RefundCommand, RefundError, RefundStatus, decide_refund};
use super::service::{
    GATEWAY_RETRY_DELAYS_MS, Loaded, append_failure, apply, request_of, stream_of,
};
use super::{Charge, ChargeError, ChargeEvent, ChargeService, IdempotencyDraft, Rendered};
use crate::error::CommandError;

/// Reloads after a concurrent append to the charge (every refund of a charge appends to the same
/// stream, so many at once contend; each round one of them wins).
const REFUND_CONFLICT_RETRY_MAX: usize = 64;

/// What to refund.
#[derive(Debug, Clone)]
pub struct RefundInput {
    pub charge_id: ChargeId,
    pub refund_id: RefundId,
    /// `None`: the rest of the charge.
    pub amount: Option<i64>,
    pub reason: Option<String>,
}

/// The charge after the command, and which refund it was about.
#[derive(Debug, Clone)]
pub struct RefundResult {
    pub charge: Charge,
    pub refund_id: RefundId,
    pub position: Position,
    pub idempotency_stored: bool,
}

/// Renders the response for one refund of a charge.
pub type RenderRefund = dyn Fn(&Charge, RefundId) -> Rendered + Send + Sync;

impl ChargeService {
    pub async fn refund(
        &self,
        input: RefundInput,
        metadata: Metadata,
        idempotency: Option<IdempotencyDraft>,
        render: &RenderRefund,
    ) -> Result<RefundResult, CommandError> {
        let stream = stream_of(input.charge_id)?;
        let fingerprint = idempotency.as_ref().map(|d| d.fingerprint.clone());
        let mut loaded = self.load(&stream).await?;
        for attempt in 0.. {
            let Some(charge) = &loaded.charge else {
                return Err(ChargeError::NotRequested.into());
            };
            if let Some(existing) = charge.refund(input.refund_id) {
                // The same refund again (its id derives from the Idempotency-Key): only for the
                // request that created it.
                if idempotency.is_some() && existing.request_fingerprint != fingerprint {
                    return Err(CommandError::IdempotencyMismatch);
                }
                break;
            }
            let command = RefundCommand::Request {
                refund_id: input.refund_id,
                amount: input.amount,
                reason: input.reason.clone(),
                request_fingerprint: fingerprint.clone(),
            };
            let events = wrap(decide_refund(charge, command)?);
            let now = self.clock.now();
            let expected = ExpectedVersion::Exact(loaded.version);
            match self
                .append(&stream, expected, &events, now, &metadata, None)
                .await
            {
                Ok(position) => {
                    let charge = apply(loaded.charge.take(), &events, now);
                    loaded = Loaded {
                        charge,
                        version: loaded.version + 1,
                        position,
                    };
                    break;
                }
                Err(AppendError::WrongExpectedVersion { .. })
                    if attempt < REFUND_CONFLICT_RETRY_MAX =>
                {
                    loaded = self.load(&stream).await?;
                }
                Err(e) => return Err(append_failure(e)),
            }
        }
        self.complete_refund(
            &stream,
            loaded,
            input.refund_id,
            metadata,
            idempotency,
            render,
        )
        .await
    }

    /// The `RefundRequested` of `input`, decided at the charge's current version and not
    /// appended: for a caller that records it in one transaction with events of another stream
    /// (`EventStore::append_atomic`), then completes it with [`Self::refund`]. `None` when the
    /// charge has that refund already, pending or made; refused when it has it as failed (the
    /// caller would record its part with no refund behind it).
    ///
    /// # Errors
    /// The charge's refusals (more than it can refund, not captured), store failures.
    pub async fn refund_request(
        &self,
        input: &RefundInput,
        metadata: &Metadata,
    ) -> Result<Option<AppendRequest>, CommandError> {
        let stream = stream_of(input.charge_id)?;
        let loaded = self.load(&stream).await?;
        let Some(charge) = &loaded.charge else {
            return Err(ChargeError::NotRequested.into());
        };
        if let Some(existing) = charge.refund(input.refund_id) {
            return match existing.status {
                RefundStatus::Failed => Err(RefundError::OutcomeRecorded(input.refund_id).into()),
                RefundStatus::Pending | RefundStatus::Succeeded => Ok(None),
            };
        }
        let command = RefundCommand::Request {
            refund_id: input.refund_id,
            amount: input.amount,
            reason: input.reason.clone(),
            request_fingerprint: None,
        };
        let events = wrap(decide_refund(charge, command)?);
        let expected = ExpectedVersion::Exact(loaded.version);
        let now = self.clock.now();
        Ok(Some(request_of(&stream, expected, &events, now, metadata)))
    }

    pub(super) async fn complete_refund(
        &self,
        stream: &StreamId,
        mut loaded: Loaded,
        refund_id: RefundId,
        metadata: Metadata,
        idempotency: Option<IdempotencyDraft>,
        render: &RenderRefund,
    ) -> Result<RefundResult, CommandError> {
        let mut outcome = None;
        for _ in 0..=REFUND_CONFLICT_RETRY_MAX {
            let Some(charge) = loaded.charge.clone() else {
                return Err(ChargeError::NotRequested.into());
            };
            let refund = charge
                .refund(refund_id)
                .ok_or(RefundError::NotFound)?
                .clone();
            let unchanged = RefundResult {
                charge: charge.clone(),
                refund_id,
                position: loaded.position,
                idempotency_stored: false,
            };
            if refund.status != RefundStatus::Pending {
                return Ok(unchanged);
            }
            if outcome.is_none() {
                outcome = self.call_gateway_refund(&charge, &refund).await;
            }
            let Some(command) = outcome.clone() else {
                // Outcome unknown: the refund stays pending (its amount stays reserved).
                return Ok(unchanged);
            };
            let events = wrap(decide_refund(&charge, command)?);
            let now = self.clock.now();
            let Some(done) = apply(Some(charge), &events, now) else {
                return Err(ChargeError::NotRequested.into());
            };
            let record = idempotency.as_ref().map(|draft| {
                let r = render(&done, refund_id);
                ledger::event::IdempotencyRecord {
                    api_key_id: draft.api_key_id.clone(),
                    key: draft.key.clone(),
                    fingerprint: draft.fingerprint.clone(),
                    status: r.status,
                    body: r.body,
                    position: Position::START,
                }
            });
            let expected = ExpectedVersion::Exact(loaded.version);
            match self
                .append_outcome(stream, expected, &events, now, &metadata, record)
                .await
            {
                Ok((position, idempotency_stored)) => {
                    return Ok(RefundResult {
                        charge: done,
                        refund_id,
                        position,
                        idempotency_stored,
                    });
                }
                // Another refund of this charge landed first: record ours on top of it.
                Err(AppendError::WrongExpectedVersion { .. }) => loaded = self.load(stream).await?,
                Err(e) => return Err(append_failure(e)),
            }
        }
        Err(CommandError::Conflict(stream.to_string()))
    }

    /// Calls the gateway's refund, retrying timeouts and 5xx with the same key.
    async fn call_gateway_refund(
        &self,
        charge: &Charge,
        refund: &super::refund::Refund,
    ) -> Option<RefundCommand> {
        let request = RefundRequest {
            idempotency_key: refund.gateway_key.clone(),
            gateway_charge_id: charge.gateway_charge_id.clone().unwrap_or_default(),
            amount: refund.amount,
        };
        let Some(gateway) = self.gateways.get(&charge.gateway) else {
            tracing::error!(refund_id = %refund.id, gateway = %charge.gateway, "the charge's gateway is not configured; refund left pending");
            return None;
        };
        // Past the gateway's memory of the key, asking again could refund twice.
        let window = gateway
            .idempotency_window()
            .and_then(|w| chrono::Duration::from_std(w).ok());
        if let Some(w) = window
            && self.clock.now() - refund.created > w - chrono::Duration::hours(1)
        {
            tracing::error!(refund_id = %refund.id, gateway = %charge.gateway, "refund pending beyond the gateway's idempotency window: not asked again; reconcile it by hand (or let its webhook settle it)");
            return None;
        }
        let mut delays = GATEWAY_RETRY_DELAYS_MS.iter();
        loop {
            match gateway.refund(request.clone()).await {
                Ok(o) => {
                    return Some(RefundCommand::RecordSuccess {
                        refund_id: refund.id,
                        gateway_refund_id: o.gateway_refund_id,
                    });
                }
                Err(GatewayError::InvalidRequest(m)) => {
                    return Some(RefundCommand::RecordFailure {
                        refund_id: refund.id,
                        failure_reason: m,
                    });
                }
                Err(e) => match delays.next() {
                    Some(ms) => {
                        tracing::warn!(refund_id = %refund.id, error = %e, "gateway refund failed; retrying with the same key");
                        tokio::time::sleep(Duration::from_millis(*ms)).await;
                    }
                    None => return None,
                },
            }
        }
    }
}

fn wrap(events: Vec<super::refund::RefundEvent>) -> Vec<ChargeEvent> {
    events.into_iter().map(ChargeEvent::Refund).collect()
}
