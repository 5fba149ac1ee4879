//! The shape every aggregate shares, and one executor that runs a command against it:
//! load the stream, fold it with `evolve`, `decide`, append with the expected version (and the
//! idempotency record, rendered from the new state, in the same transaction); on a concurrent
//! append, reload and decide again, a bounded number of times.

use std::fmt::Display;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ledger::event::{
    AppendRequest, ExpectedVersion, IdempotencyRecord, Metadata, Position, StreamId,
};
use ledger::store::{AppendError, EventStore, StoreError};

use crate::charge::{IdempotencyDraft, Rendered};
use crate::clock::Clock;
use crate::error::CommandError;
use crate::stored::{DomainEvent, decode_stream, to_new_event};

/// Decides again after a concurrent append at most this many times.
const CONFLICT_RETRY_MAX: usize = 3;

/// An event-sourced aggregate: pure `decide` and `evolve`.
pub trait Aggregate: Sized + Clone + Send + Sync + 'static {
    type Event: DomainEvent + Send + Sync;
    type Command: Clone + Send + Sync;
    type Error: Into<CommandError> + Send;
    /// Stream category: instance `id` lives in stream `<CATEGORY>-<id>`.
    const CATEGORY: &'static str;

    /// The events a command produces from the current state (none: nothing to do).
    fn decide(
        state: Option<&Self>,
        command: Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after one more event at business time `at`.
    fn evolve(state: Option<Self>, event: &Self::Event, at: DateTime<Utc>) -> Option<Self>;
}

/// What a command left behind.
#[derive(Debug, Clone)]
pub struct Executed<A> {
    pub state: A,
    /// Position of the stream's last event.
    pub position: Position,
    /// Whether this call stored the idempotency record.
    pub idempotency_stored: bool,
}

/// An aggregate as loaded from its stream.
pub struct Loaded<A> {
    pub state: Option<A>,
    pub version: i64,
    pub position: Position,
}

/// A command decided against the current state, not yet appended.
pub struct Decision<A> {
    /// The state once `request` is recorded.
    pub state: A,
    /// The events to append at the version decided on (`None`: nothing to do).
    pub request: Option<AppendRequest>,
    /// Position of the stream's last event when it was loaded.
    pub position: Position,
}

/// Runs commands of any aggregate against the store.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
}

impl Executor {
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The same executor, deciding at the time of `clock` (a test clock, a scheduled job).
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: self.store.clone(),
            clock,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn load<A: Aggregate>(
        &self,
        id: &(dyn Display + Sync),
    ) -> Result<Loaded<A>, StoreError> {
        let recorded = self.store.read_stream(&stream_of::<A>(id)?).await?;
        let events: Vec<A::Event> = decode_stream(&recorded)?;
        let mut state = None;
        for (e, r) in events.iter().zip(&recorded) {
            state = A::evolve(state, e, r.occurred_at);
        }
        Ok(Loaded {
            state,
            version: recorded.last().map_or(0, |r| r.stream_version),
            position: recorded.last().map_or(Position::START, |r| r.position),
        })
    }

    /// Decides `command` against instance `id` and appends what it produced. A command that
    /// produces nothing answers the current state (and needs one: `decide` must refuse commands
    /// on a missing instance).
    pub async fn execute<A: Aggregate>(
        &self,
        id: &(dyn Display + Sync),
        command: A::Command,
        metadata: &Metadata,
        idempotency: Option<&IdempotencyDraft>,
        render: &(dyn Fn(&A) -> Rendered + Send + Sync),
    ) -> Result<Executed<A>, CommandError> {
        let stream = stream_of::<A>(id)?;
        for _ in 0..CONFLICT_RETRY_MAX {
            let decision = self
                .decide::<A>(id, command.clone(), metadata, idempotency, render)
                .await?;
            let Some(request) = decision.request else {
                return Ok(Executed {
                    state: decision.state,
                    position: decision.position,
                    idempotency_stored: false,
                });
            };
            let idempotency_stored = request.idempotency.is_some();
            match self.store.append(request).await {
                Ok(c) => {
                    return Ok(Executed {
                        state: decision.state,
                        position: c.last_position,
                        idempotency_stored,
                    });
                }
                Err(AppendError::WrongExpectedVersion { .. }) => continue,
                Err(e) => return Err(refusal(e)),
            }
        }
        Err(CommandError::Conflict(stream.to_string()))
    }

    /// Loads instance `id` and decides `command` against it, without appending: the request
    /// carries the expected version and the idempotency record rendered from the new state.
    pub async fn decide<A: Aggregate>(
        &self,
        id: &(dyn Display + Sync),
        command: A::Command,
        metadata: &Metadata,
        idempotency: Option<&IdempotencyDraft>,
        render: &(dyn Fn(&A) -> Rendered + Send + Sync),
    ) -> Result<Decision<A>, CommandError> {
        let stream = stream_of::<A>(id)?;
        let loaded = self.load::<A>(id).await?;
        let now = self.clock.now();
        let events = A::decide(loaded.state.as_ref(), command, now).map_err(Into::into)?;
        let mut state = loaded.state;
        for e in &events {
            state = A::evolve(state, e, now);
        }
        let Some(state) = state else {
            return Err(CommandError::Store(StoreError::Corrupt(format!(
                "{stream}: decide produced no state"
            ))));
        };
        if events.is_empty() {
            return Ok(Decision {
                state,
                request: None,
                position: loaded.position,
            });
        }
        let record = idempotency.map(|d| {
            let r = render(&state);
            IdempotencyRecord {
                api_key_id: d.api_key_id.clone(),
                key: d.key.clone(),
                fingerprint: d.fingerprint.clone(),
                status: r.status,
                body: r.body,
                position: Position::START,
            }
        });
        let expected = match loaded.version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        let new_events = events
            .iter()
            .map(|e| to_new_event(e, now, metadata))
            .collect();
        let mut request = AppendRequest::new(stream, expected, new_events);
        request.idempotency = record;
        Ok(Decision {
            state,
            request: Some(request),
            position: loaded.position,
        })
    }
}

/// What an append refused for another reason than a concurrent append means to a command.
pub fn refusal(e: AppendError) -> CommandError {
    match e {
        AppendError::WrongExpectedVersion { stream_id, .. } => {
            CommandError::Conflict(stream_id.to_string())
        }
        AppendError::IdempotencyKeyExists { .. } => CommandError::IdempotencyKeyTaken,
        AppendError::Store(e) => e.into(),
        AppendError::Invalid(m) => StoreError::Rejected(m).into(),
    }
}

fn stream_of<A: Aggregate>(id: &(dyn Display + Sync)) -> Result<StreamId, StoreError> {
    StreamId::of(A::CATEGORY, &id).map_err(|e| StoreError::Corrupt(e.to_string()))
}
