//! The charge service: request, call the gateway, record the outcome.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gateways::Gateways;
use ledger::event::{
    AppendRequest, ExpectedVersion, IdempotencyRecord, Metadata, Position, StreamId,
};
use ledger::ids::{ChargeId, CustomerId};
use ledger::money::Money;
use ledger::store::{AppendError, EventStore, StoreError};

use super::asking::{Unsettled, count_gateway_assessment};
use super::authorization;
use super::failover::{Fallback, decide_failover};
use super::{Charge, ChargeCommand, ChargeError, ChargeEvent, ChargeStatus, decide, evolve};
use crate::clock::Clock;
use crate::error::CommandError;
use crate::stored::{decode_stream, to_new_event};

/// Gateway calls per charge attempt, and the pause before each retry (timeouts and 5xx only;
/// every retry uses the same gateway idempotency key).
pub(super) const GATEWAY_RETRY_DELAYS_MS: [u64; 2] = [100, 400];
/// Reloads after a concurrent append to the same charge.
const CONFLICT_RETRY_MAX: usize = 3;
/// Appends one completion may make at most: an authorization, a failover, and the conflicts.
const COMPLETION_STEPS_MAX: usize = CONFLICT_RETRY_MAX + 2;
/// Pauses before appending the outcome again when the store was unavailable: the gateway has
/// answered, and its answer must not be lost to a passing database failure. A retry after a
/// commit that did happen fails its expected version and finds the outcome on reload.
const OUTCOME_APPEND_RETRY_DELAYS_MS: [u64; 3] = [100, 500, 2_000];

/// Who asked, under which `Idempotency-Key`: the response is stored with the outcome event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyDraft {
    pub api_key_id: String,
    pub key: String,
    pub fingerprint: String,
}

/// A response as the caller will see it, to store under the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub body: String,
}

/// The render of a command no request waits on (a scheduled job, an inner step of a flow):
/// without an idempotency key nothing is stored, so nothing needs rendering.
pub fn unrendered<A>(_: &A) -> Rendered {
    Rendered {
        status: 200,
        body: String::new(),
    }
}

/// Renders the response for a charge (the API layer's representation).
pub type Render = dyn Fn(&Charge) -> Rendered + Send + Sync;

/// What to charge.
#[derive(Debug, Clone)]
pub struct ChargeInput {
    pub charge_id: ChargeId,
    pub amount: Money,
    pub customer_id: Option<CustomerId>,
    pub payment_method: String,
    pub description: Option<String>,
    /// The gateway holding `payment_method` (a customer's method); `None`: the default gateway.
    pub gateway: Option<String>,
    /// Without the customer present (renewals, scheduled invoice payments).
    pub off_session: bool,
    /// What fraud screening needs beyond the charge (countries).
    pub risk: super::fraud::RiskFacts,
    /// The customer's methods at other gateways, in order of preference, for failover.
    pub fallbacks: Vec<Fallback>,
    /// The gateway's customer the method is attached to (Stripe `cus_…`), when linked.
    pub gateway_customer: Option<String>,
}

/// The result of a charge command.
#[derive(Debug, Clone)]
pub struct ChargeResult {
    pub charge: Charge,
    /// Position of the charge's last event.
    pub position: Position,
    /// Whether this call stored the idempotency record (false when another call finished first
    /// or the outcome is still unknown).
    pub idempotency_stored: bool,
}

/// Runs right after the gateway answered a charge, before the outcome is appended.
pub type AfterGatewayHook = Arc<dyn Fn() + Send + Sync>;

pub struct ChargeService {
    store: Arc<dyn EventStore>,
    pub(super) gateways: Gateways,
    pub(super) clock: Arc<dyn Clock>,
    /// Fraud screening before the gateway is called; `None`: none.
    screening: Option<Arc<super::review::Screening>>,
    /// Whether a charge whose gateway cannot be reached moves to a fallback.
    failover: bool,
    /// See [`ChargeService::with_after_gateway_hook`].
    after_gateway: Option<AfterGatewayHook>,
}

pub(super) struct Loaded {
    pub(super) charge: Option<Charge>,
    pub(super) version: i64,
    pub(super) position: Position,
}

impl ChargeService {
    pub fn new(
        store: Arc<dyn EventStore>,
        gateways: impl Into<Gateways>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            gateways: gateways.into(),
            clock,
            screening: None,
            failover: false,
            after_gateway: None,
        }
    }

    /// The same service, recording business time from `clock` (a test clock, a scheduled job).
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: self.store.clone(),
            gateways: self.gateways.clone(),
            clock,
            screening: self.screening.clone(),
            failover: self.failover,
            after_gateway: self.after_gateway.clone(),
        }
    }

    /// The same service, screening every new charge with `rules` before the gateway is called
    /// (no rule on: no screening, nothing recorded).
    pub fn with_fraud_rules(&self, rules: super::fraud::FraudRules) -> Self {
        Self {
            store: self.store.clone(),
            gateways: self.gateways.clone(),
            clock: self.clock.clone(),
            screening: rules
                .enabled()
                .then(|| Arc::new(super::review::Screening::new(rules))),
            failover: self.failover,
            after_gateway: self.after_gateway.clone(),
        }
    }

    /// The same service, moving charges whose gateway cannot be reached to the customer's
    /// method at another gateway (`on`), or never (the default).
    pub fn with_failover(&self, on: bool) -> Self {
        Self {
            store: self.store.clone(),
            gateways: self.gateways.clone(),
            clock: self.clock.clone(),
            screening: self.screening.clone(),
            failover: on,
            after_gateway: self.after_gateway.clone(),
        }
    }

    /// The same service, running `hook` each time the gateway has answered a charge (success or
    /// decline) and before the outcome is appended: the window a crash-recovery test stops the
    /// process in (`billing serve` installs one that exits when
    /// `BILLING_CRASH_AFTER_GATEWAY_CHARGE=1`). Never set in production.
    pub fn with_after_gateway_hook(&self, hook: AfterGatewayHook) -> Self {
        Self {
            store: self.store.clone(),
            gateways: self.gateways.clone(),
            clock: self.clock.clone(),
            screening: self.screening.clone(),
            failover: self.failover,
            after_gateway: Some(hook),
        }
    }

    /// The charge as recorded, if it exists.
    ///
    /// # Errors
    /// Store failures.
    pub async fn get(&self, id: ChargeId) -> Result<Option<Charge>, CommandError> {
        Ok(self.load(&stream_of(id)?).await?.charge)
    }

    /// Charges in two phases: `ChargeRequested`, the gateway call, then the outcome event (with
    /// the idempotency record, rendered from the final state, in the same transaction).
    ///
    /// If the charge stream exists already (a retry, a crash in between, a concurrent request
    /// with the same key), the existing charge is completed or returned, never charged again —
    /// and only for the request that created it (same fingerprint), else `IdempotencyMismatch`.
    pub async fn charge(
        &self,
        input: ChargeInput,
        metadata: Metadata,
        idempotency: Option<IdempotencyDraft>,
        render: &Render,
    ) -> Result<ChargeResult, CommandError> {
        let stream = stream_of(input.charge_id)?;
        let gateway = match &input.gateway {
            None => self.gateways.default_gateway(),
            Some(name) => self
                .gateways
                .route(name)
                .ok_or_else(|| ChargeError::GatewayNotConfigured(name.clone()))?,
        };
        // Screened on the gateway's risk level: authorized first, captured once allowed.
        let capture_later = !input.off_session
            && gateway.authorizes()
            && self
                .screening
                .as_ref()
                .is_some_and(|s| s.rules.reads_gateway_risk());
        // Optimistic: create the charge; only a retry (the stream exists) pays for a load.
        let command = ChargeCommand::Request {
            charge_id: input.charge_id,
            amount: input.amount,
            customer_id: input.customer_id,
            payment_method: input.payment_method,
            description: input.description,
            gateway: gateway.name().to_string(),
            off_session: input.off_session,
            gateway_customer: input.gateway_customer,
            capture_later,
            request_fingerprint: idempotency.as_ref().map(|d| d.fingerprint.clone()),
        };
        let mut events = decide(None, command)?;
        let now = self.clock.now();
        // Screened: what a customer asks now; not the merchant's own off-session invoice payments.
        if let Some(screening) = self.screening.as_ref().filter(|_| !input.off_session)
            && let Some(requested) = apply(None, &events, now)
        {
            let facts = screening.facts(&requested, input.risk, now);
            events.extend(super::review::screened(
                &requested,
                &screening.rules,
                &facts,
            ));
        }
        let created = self
            .append(
                &stream,
                ExpectedVersion::NoStream,
                &events,
                now,
                &metadata,
                None,
            )
            .await;
        let loaded = match created {
            Ok(position) => {
                let charge = apply(None, &events, now);
                if let (Some(screening), Some(c)) = (&self.screening, &charge)
                    && c.fraud.is_some()
                {
                    screening.record(c, now);
                }
                if let Some(a) = charge.as_ref().and_then(|c| c.fraud.as_ref()) {
                    let decision = a.decision.as_str();
                    metrics::counter!("billing_fraud_decisions_total", "decision" => decision)
                        .increment(1);
                }
                Loaded {
                    charge,
                    version: i64::try_from(events.len()).unwrap_or(1),
                    position,
                }
            }
            Err(AppendError::WrongExpectedVersion { .. }) => self.load(&stream).await?,
            Err(e) => return Err(append_failure(e)),
        };
        if let (Some(draft), Some(existing)) = (&idempotency, &loaded.charge)
            && existing.request_fingerprint.as_deref() != Some(draft.fingerprint.as_str())
        {
            return Err(CommandError::IdempotencyMismatch);
        }
        self.complete(
            &stream,
            loaded,
            metadata,
            idempotency,
            render,
            &input.fallbacks,
        )
        .await
    }

    pub(super) async fn complete(
        &self,
        stream: &StreamId,
        mut loaded: Loaded,
        metadata: Metadata,
        idempotency: Option<IdempotencyDraft>,
        render: &Render,
        fallbacks: &[Fallback],
    ) -> Result<ChargeResult, CommandError> {
        for _ in 0..COMPLETION_STEPS_MAX {
            let Some(charge) = loaded.charge.clone() else {
                return Err(ChargeError::NotRequested.into());
            };
            // Settled; or taken in by the gateway, which settles it by webhook.
            if charge.status != ChargeStatus::Pending || charge.processing {
                return Ok(ChargeResult {
                    charge,
                    position: loaded.position,
                    idempotency_stored: false,
                });
            }
            let asked = match authorization::settlement(&charge) {
                Some(settlement) => self.settle(&charge, &settlement).await,
                None => self.ask(&charge).await,
            };
            let command = match asked {
                Ok(command) => command,
                Err(Unsettled::Unreachable(reason))
                    if self.failover
                        && !charge.authorized
                        && self.fallback(&charge, fallbacks).is_some() =>
                {
                    if let Some(to) = self.fallback(&charge, fallbacks) {
                        let event = decide_failover(&charge, to, &reason)?;
                        let now = self.clock.now();
                        let expected = ExpectedVersion::Exact(loaded.version);
                        tracing::warn!(charge_id = %charge.id, from = %charge.gateway, to = %to.gateway, %reason, "gateway unreachable; failing over");
                        match self
                            .append(stream, expected, &[event], now, &metadata, None)
                            .await
                        {
                            Err(AppendError::WrongExpectedVersion { .. }) | Ok(_) => {
                                loaded = self.load(stream).await?;
                            }
                            Err(e) => return Err(append_failure(e)),
                        }
                    }
                    continue;
                }
                // Outcome unknown: the charge stays pending, to be completed with the same key.
                Err(_) => {
                    return Ok(ChargeResult {
                        charge,
                        position: loaded.position,
                        idempotency_stored: false,
                    });
                }
            };
            if let Some(hook) = &self.after_gateway {
                hook();
            }
            // A charge still processing answers 202 now and something else later; an authorization
            // is a step: neither is stored as the answer.
            let authorizing = matches!(command, ChargeCommand::RecordAuthorization { .. });
            // Whether screening assessed the authorization (counted once appended).
            let mut assessed = false;
            let settled =
                !authorizing && !matches!(command, ChargeCommand::RecordProcessing { .. });
            let mut events = decide(Some(&charge), command)?;
            let now = self.clock.now();
            if authorizing && let Some(screening) = &self.screening {
                let held = apply(Some(charge.clone()), &events, now);
                if let Some(held) = held {
                    let screened = authorization::screened(&held, &screening.rules);
                    assessed = !screened.is_empty();
                    events.extend(screened);
                }
            }
            let Some(done) = apply(Some(charge), &events, now) else {
                return Err(ChargeError::NotRequested.into());
            };
            let record = idempotency.as_ref().filter(|_| settled).map(|draft| {
                let r = render(&done);
                IdempotencyRecord {
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
                // Authorized and allowed (to capture) or blocked (to cancel): next step.
                Ok((position, _))
                    if authorizing
                        && !events.is_empty()
                        && authorization::settlement(&done).is_some() =>
                {
                    if assessed {
                        count_gateway_assessment(&done);
                    }
                    loaded = Loaded {
                        version: loaded.version + i64::try_from(events.len()).unwrap_or(1),
                        charge: Some(done),
                        position,
                    };
                }
                Ok((position, idempotency_stored)) => {
                    if assessed {
                        count_gateway_assessment(&done);
                    }
                    return Ok(ChargeResult {
                        charge: done,
                        position,
                        idempotency_stored,
                    });
                }
                Err(AppendError::WrongExpectedVersion { .. }) => loaded = self.load(stream).await?,
                Err(e) => return Err(append_failure(e)),
            }
        }
        Err(CommandError::Conflict(stream.to_string()))
    }

    /// Appends the outcome (with the idempotency record when there is one), retrying while the
    /// store is unavailable. Returns the position and whether the record was stored.
    pub(super) async fn append_outcome(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[ChargeEvent],
        at: DateTime<Utc>,
        metadata: &Metadata,
        mut record: Option<IdempotencyRecord>,
    ) -> Result<(Position, bool), AppendError> {
        let mut delays = OUTCOME_APPEND_RETRY_DELAYS_MS.iter();
        loop {
            let stored = record.is_some();
            match self
                .append(stream, expected, events, at, metadata, record.clone())
                .await
            {
                Ok(position) => return Ok((position, stored)),
                // A response is stored under this key already: record the outcome alone.
                Err(AppendError::IdempotencyKeyExists { .. }) if stored => record = None,
                Err(AppendError::Store(StoreError::Unavailable(e))) => match delays.next() {
                    Some(ms) => {
                        tracing::warn!(%stream, error = %e, "store unavailable; appending the charge outcome again");
                        tokio::time::sleep(Duration::from_millis(*ms)).await;
                    }
                    None => return Err(AppendError::Store(StoreError::Unavailable(e))),
                },
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) async fn load(&self, stream: &StreamId) -> Result<Loaded, StoreError> {
        let recorded = self.store.read_stream(stream).await?;
        let events: Vec<ChargeEvent> = decode_stream(&recorded)?;
        let mut charge = None;
        for (e, r) in events.iter().zip(&recorded) {
            charge = evolve(charge, e, r.occurred_at);
        }
        Ok(Loaded {
            charge,
            version: recorded.last().map_or(0, |r| r.stream_version),
            position: recorded.last().map_or(Position::START, |r| r.position),
        })
    }

    pub(super) async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[ChargeEvent],
        at: DateTime<Utc>,
        metadata: &Metadata,
        record: Option<IdempotencyRecord>,
    ) -> Result<Position, AppendError> {
        let mut request = request_of(stream, expected, events, at, metadata);
        request.idempotency = record;
        self.store.append(request).await.map(|c| c.last_position)
    }
}

/// The append of `events` to a charge's stream, all at business time `at`.
pub(super) fn request_of(
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[ChargeEvent],
    at: DateTime<Utc>,
    metadata: &Metadata,
) -> AppendRequest {
    let new_events = events
        .iter()
        .map(|e| to_new_event(e, at, metadata))
        .collect();
    AppendRequest::new(stream.clone(), expected, new_events)
}

/// The state after `events`, all at business time `at`.
pub(super) fn apply(
    mut state: Option<Charge>,
    events: &[ChargeEvent],
    at: DateTime<Utc>,
) -> Option<Charge> {
    for e in events {
        state = evolve(state, e, at);
    }
    state
}

pub(super) fn stream_of(id: ChargeId) -> Result<StreamId, CommandError> {
    StreamId::of("charge", &id).map_err(|e| CommandError::Store(StoreError::Corrupt(e.to_string())))
}

pub(super) fn append_failure(e: AppendError) -> CommandError {
    match e {
        AppendError::Store(s) => CommandError::Store(s),
        AppendError::WrongExpectedVersion { stream_id, .. } => {
            CommandError::Conflict(stream_id.to_string())
        }
        AppendError::IdempotencyKeyExists { .. } => CommandError::IdempotencyMismatch,
        AppendError::Invalid(m) => CommandError::Store(StoreError::Rejected(m)),
    }
}
