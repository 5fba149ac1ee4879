//! The envelope of a recorded event, and what an append asks for.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::chain::Hash;

/// Global position in the log: 1-based, contiguous, in commit order. `Position(0)` is "before the
/// first event".
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub i64);

impl Position {
    pub const START: Position = Position(0);

    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Name of one aggregate's stream, e.g. `charge-ch_0b6c…` or `customer-cus_…`.
///
/// 1 to 200 characters of ASCII letters, digits and `-_.:`; the part before the first `-` is the
/// stream's category (used for NATS subjects).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StreamId(String);

/// Why a string is not a stream id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid stream id: 1 to 200 characters of ASCII letters, digits and `-_.:`")]
pub struct InvalidStreamId;

impl StreamId {
    pub const MAX_LEN: usize = 200;

    pub fn new(s: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if ok {
            Ok(Self(s))
        } else {
            Err(InvalidStreamId)
        }
    }

    /// `category-id` for an aggregate instance, e.g. `StreamId::of("charge", &charge_id)`.
    pub fn of(category: &str, id: &impl fmt::Display) -> Result<Self, InvalidStreamId> {
        Self::new(format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn category(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StreamId::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the writer expects the stream's version to be before this append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (1-based).
    Exact(i64),
    /// No check.
    Any,
}

/// Who and what caused an event. Stored as JSON beside the payload; absent fields are omitted.
///
/// Fields this build does not know (written by a newer one, or renamed since) are kept in
/// `other`, so reading and re-serialising stored metadata never changes it: the hash chain is
/// checked against exactly what was written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, Value>,
}

/// An event a command wants recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Metadata,
    /// Business time (the billing clock), not wall time.
    pub occurred_at: DateTime<Utc>,
}

impl NewEvent {
    /// A version-1 event with a fresh id (UUIDv7, ordered by creation: the log's unique index
    /// of event ids grows at its right end) and empty metadata.
    pub fn new(event_type: impl Into<String>, payload: Value, occurred_at: DateTime<Utc>) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            payload,
            metadata: Metadata::default(),
            occurred_at,
        }
    }

    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// The response a command gave under an `Idempotency-Key`, committed in the same transaction as
/// the command's events so the two exist together or not at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Id of the API key that sent the request: keys are scoped per caller.
    pub api_key_id: String,
    pub key: String,
    /// SHA-256 (hex) of the request's method, path and body.
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
    /// Position of the last event of the append that stored it (set by the store).
    pub position: Position,
}

/// One append: events for one stream, checked against an expected version, answered on its own.
#[derive(Clone, Debug)]
pub struct AppendRequest {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyRecord>,
}

impl AppendRequest {
    pub fn new(stream_id: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            stream_id,
            expected,
            events,
            idempotency: None,
        }
    }

    pub fn with_idempotency(mut self, record: IdempotencyRecord) -> Self {
        self.idempotency = Some(record);
        self
    }
}

/// What a successful append recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    pub first_position: Position,
    pub last_position: Position,
    /// The stream's version after the append.
    pub stream_version: i64,
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Metadata,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: Hash,
    pub hash: Hash,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_checked() {
        assert!(StreamId::new("charge-ch_abc").is_ok());
        assert_eq!(StreamId::new("charge-ch_abc").unwrap().category(), "charge");
        assert_eq!(StreamId::new("plain").unwrap().category(), "plain");
        for bad in ["", "has space", "ümlaut", &"x".repeat(201)] {
            assert!(StreamId::new(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<StreamId>("\"a b\"").is_err());
    }
}
