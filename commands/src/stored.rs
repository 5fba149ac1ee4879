//! Typed domain events <-> the ledger's envelope (`event_type` + JSON payload).

use chrono::{DateTime, Utc};
use ledger::event::{Metadata, NewEvent, RecordedEvent};
use ledger::store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A domain event enum that knows its ledger type names.
pub trait DomainEvent: Sized {
    fn event_type(&self) -> &'static str;
    fn payload(&self) -> serde_json::Value;
    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self>;
}

pub fn to_new_event<E: DomainEvent>(e: &E, at: DateTime<Utc>, metadata: &Metadata) -> NewEvent {
    NewEvent::new(e.event_type(), e.payload(), at).with_metadata(metadata.clone())
}

pub fn decode_stream<E: DomainEvent>(events: &[RecordedEvent]) -> Result<Vec<E>, StoreError> {
    events
        .iter()
        .map(|r| {
            E::from_stored(&r.event_type, &r.payload).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "unreadable {} at position {}",
                    r.event_type, r.position
                ))
            })
        })
        .collect()
}

pub fn to_json<T: Serialize>(t: &T) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

pub fn from_json<T: DeserializeOwned>(v: &serde_json::Value) -> Option<T> {
    T::deserialize(v).ok()
}
