//! The webhook inbox: a gateway's event is recorded as `GatewayEventReceived` — the raw body
//! and the headers that authenticate it — before anything else happens, once per gateway event
//! id (stream `gateway_event-<gateway>-<id>`, created with `no_stream`: a second delivery of the
//! same event finds the stream and records nothing).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ledger::event::{AppendRequest, ExpectedVersion, Metadata, NewEvent, Position, StreamId};
use ledger::store::{AppendError, EventStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::error::CommandError;

/// The stream category of received gateway events.
pub const CATEGORY: &str = "gateway_event";
/// The event type.
pub const RECEIVED: &str = "GatewayEventReceived";

/// A webhook delivery, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayEventReceived {
    /// `stripe` or `paypal`.
    pub gateway: String,
    /// The gateway's event id (`evt_…`, `WH-…`).
    pub gateway_event_id: String,
    /// The gateway's event type (`payment_intent.succeeded`, …).
    pub event_type: String,
    /// When the gateway created the event (unix seconds).
    pub created: i64,
    pub livemode: bool,
    /// The raw body, byte for byte (its signature covers these bytes).
    pub body: String,
    /// The headers that authenticate it (lower-case names).
    pub headers: BTreeMap<String, String>,
}

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The position of the recorded event (the first delivery's, for a duplicate).
    pub position: Position,
    /// The event had been received before: nothing new was recorded.
    pub duplicate: bool,
    /// The recorded event's id (the first delivery's): the causation of what it leads to.
    pub event_id: uuid::Uuid,
}

fn stream(e: &GatewayEventReceived) -> Result<StreamId, CommandError> {
    StreamId::new(format!("{CATEGORY}-{}-{}", e.gateway, e.gateway_event_id))
        .map_err(|err| CommandError::Store(StoreError::Rejected(err.to_string())))
}

/// Where the delivery `gateway_event_id` of `gateway` was recorded, if it was.
///
/// # Errors
/// Store failures.
pub async fn recorded(
    store: &dyn EventStore,
    gateway: &str,
    gateway_event_id: &str,
) -> Result<Option<Position>, CommandError> {
    let Ok(stream) = StreamId::new(format!("{CATEGORY}-{gateway}-{gateway_event_id}")) else {
        return Ok(None);
    };
    Ok(store
        .read_stream(&stream)
        .await?
        .first()
        .map(|r| r.position))
}

/// Records `e` at `at`, once per gateway event id.
///
/// # Errors
/// Store failures (then nothing is recorded, and the gateway will deliver again).
pub async fn record(
    store: &dyn EventStore,
    e: &GatewayEventReceived,
    at: DateTime<Utc>,
    metadata: &Metadata,
) -> Result<Recorded, CommandError> {
    let stream = stream(e)?;
    let payload = serde_json::to_value(e)
        .map_err(|err| CommandError::Store(StoreError::Rejected(err.to_string())))?;
    let event = NewEvent::new(RECEIVED, payload, at).with_metadata(metadata.clone());
    let event_id = event.event_id;
    let request = AppendRequest::new(stream.clone(), ExpectedVersion::NoStream, vec![event]);
    match store.append(request).await {
        Ok(c) => Ok(Recorded {
            position: c.last_position,
            duplicate: false,
            event_id,
        }),
        Err(AppendError::WrongExpectedVersion { .. }) => {
            let first = store.read_stream(&stream).await?;
            Ok(Recorded {
                position: first.first().map_or(Position(0), |r| r.position),
                duplicate: true,
                event_id: first.first().map_or(event_id, |r| r.event_id),
            })
        }
        Err(AppendError::Store(s)) => Err(CommandError::Store(s)),
        Err(other) => Err(CommandError::Store(StoreError::Rejected(other.to_string()))),
    }
}
