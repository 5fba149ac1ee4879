//! The event store: one trait, two backends with the same semantics.
//!
//! - [`postgres::PgStore`] for production;
//! - [`sqlite::SqliteStore`] for the embedded default (a WAL file under `BILLING_DATA_DIR`).
//!
//! Appends go through a per-process group-commit [`writer`]: requests queue up, the writer takes a
//! bounded batch, and commits it in one transaction while holding the ledger head row, so positions
//! are contiguous and in commit order. What each request asks (expected version, idempotency key)
//! is checked on its own by the pure [`plan`] step and answered on its own.

/// The columns of `events`, in the order both stores' decoders read them; a macro so the SQL can
/// be built with `concat!` into `&'static str` (no string built per query).
macro_rules! event_columns {
    () => {
        "position, event_id, stream_id, stream_version, event_type, schema_version, payload, \
         metadata, occurred_at, recorded_at, prev_hash, hash"
    };
}

mod leader;
mod open;
mod plan;
pub mod postgres;
mod read;
pub mod sqlite;
mod tail;
mod writer;

use async_trait::async_trait;

use crate::chain::Hash;
use crate::event::{
    AppendRequest, Committed, ExpectedVersion, IdempotencyRecord, Position, RecordedEvent, StreamId,
};
use crate::upcast::Upcasters;

pub use leader::Leadership;
pub use open::AnyStore;
pub use read::{read_all, read_categories, read_page, verify_chain};
pub use tail::{TAIL_CAPACITY, TAIL_MAX_BYTES, Tail};
pub use writer::{WriterConfig, WriterStats};

/// A page of [`EventStore::read_categories`].
#[derive(Debug)]
pub struct CategoryPage {
    /// The events of the categories asked for.
    pub events: Vec<RecordedEvent>,
    /// The log was looked at up to here (the events of other categories before it skipped): the
    /// next page starts after it.
    pub through: Position,
    /// Whether the page stopped at its limit (there may be more now).
    pub more: bool,
}

impl CategoryPage {
    /// Nothing read: the next page starts after `after` again.
    #[must_use]
    pub fn nothing_after(after: Position) -> Self {
        CategoryPage {
            events: Vec::new(),
            through: after,
            more: false,
        }
    }
}

/// An infrastructure failure: the caller did nothing wrong (HTTP 5xx).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database refused a statement; the transaction was rolled back.
    #[error("database rejected the statement: {0}")]
    Rejected(String),
    /// The database could not be reached or the connection broke.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The writer task has stopped.
    #[error("the event store is shutting down")]
    Closed,
    /// Stored data could not be read back (bad JSON, bad hash length, …).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) if is_transient(db.as_ref()) => {
                StoreError::Unavailable(db.to_string())
            }
            sqlx::Error::Database(db) => StoreError::Rejected(db.to_string()),
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(e.to_string())
            }
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// Whether a database error code says "try again later" rather than "this statement is wrong".
///
/// PostgreSQL SQLSTATE classes 08 (connection), 53 (insufficient resources), 57 (operator
/// intervention, e.g. shutdown), 40 (serialization failure, deadlock) and 55P03 (lock not
/// available); SQLite primary codes BUSY (5), LOCKED (6), IOERR (10), FULL (13), CANTOPEN (14).
/// Only the others are `Rejected`, the kind for which the writer retries a batch request by
/// request.
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return ["08", "53", "57", "40"]
            .iter()
            .any(|class| code.starts_with(class))
            || code == "55P03";
    }
    code.parse::<u32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 10 | 13 | 14))
}

/// Why one append request was not recorded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// Optimistic concurrency: the stream moved on (HTTP 409).
    #[error("stream {stream_id} is at version {actual:?}, expected {expected:?}")]
    WrongExpectedVersion {
        stream_id: StreamId,
        expected: ExpectedVersion,
        actual: Option<i64>,
    },
    /// An idempotency record for this (API key, key) exists already.
    #[error("idempotency key already used")]
    IdempotencyKeyExists { api_key_id: String, key: String },
    /// The request itself is malformed (no events, NUL in a string, too large…).
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decodes the `ledger_head` row (or a position/hash pair read with it).
pub(crate) fn head_from_row(position: i64, hash: &[u8]) -> Result<Head, StoreError> {
    Ok(Head {
        position: Position(position),
        hash: Hash::from_slice(hash).ok_or_else(|| StoreError::Corrupt("head hash".into()))?,
    })
}

/// Decodes a row of `idempotency_keys` (fingerprint, status, body, position).
pub(crate) fn idempotency_from_row(
    api_key_id: &str,
    key: &str,
    (fingerprint, status, body, position): (String, i64, String, i64),
) -> IdempotencyRecord {
    IdempotencyRecord {
        api_key_id: api_key_id.to_string(),
        key: key.to_string(),
        fingerprint,
        status: u16::try_from(status).unwrap_or(500),
        body,
        position: Position(position),
    }
}

/// The head of the log: last position and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Head {
    pub position: Position,
    pub hash: Hash,
}

/// The event store. Both backends implement it and pass the same conformance suite.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// `"postgres"` or `"sqlite"`.
    fn backend(&self) -> &'static str;

    /// Appends requests through the group-commit writer. Each is checked and answered on its own;
    /// the answers come back in the order of the requests.
    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Committed, AppendError>>;

    /// Appends one request.
    async fn append(&self, request: AppendRequest) -> Result<Committed, AppendError> {
        self.append_many(vec![request])
            .await
            .pop()
            .unwrap_or(Err(AppendError::Store(StoreError::Closed)))
    }

    /// Appends several requests (of different streams, say) in one transaction: every one is
    /// recorded, or none is and the first refusal is the answer. An empty list records nothing.
    async fn append_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Committed>, AppendError>;

    /// All events of one stream in version order (upcast).
    async fn read_stream(&self, stream_id: &StreamId) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The version of a stream's last event (0 for a stream with none), without reading it.
    async fn stream_version(&self, stream_id: &StreamId) -> Result<i64, StoreError>;

    /// Up to `limit` events after `after`, in position order, as stored (not upcast).
    async fn read_page_raw(
        &self,
        after: Position,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events after `after` in position order, as stored, of one stream and/or of
    /// one event type (both `None`: as `read_page_raw`).
    async fn read_page_filtered(
        &self,
        after: Position,
        limit: u32,
        stream_id: Option<&StreamId>,
        event_type: Option<&str>,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Events after `after` of the streams of `categories` (a stream id's part before its first
    /// `-`: `charge`, `invoice`, …), in position order, as stored (not upcast): for the tasks
    /// that follow a part of the log (the scheduler, the recovery of charges) without reading
    /// the rest back. The default reads every event and keeps the wanted ones; PostgreSQL
    /// filters in the database.
    async fn read_categories(
        &self,
        after: Position,
        limit: u32,
        categories: &[&str],
    ) -> Result<CategoryPage, StoreError> {
        if limit == 0 {
            return Ok(CategoryPage::nothing_after(after));
        }
        let page = self.read_page_raw(after, limit).await?;
        let more = page.len() == limit as usize;
        let through = page.last().map_or(after, |e| e.position);
        let events = page
            .into_iter()
            .filter(|e| categories.contains(&e.stream_id.category()))
            .collect();
        Ok(CategoryPage {
            events,
            through,
            more,
        })
    }

    /// One event by its id (upcast).
    async fn read_event(&self, event_id: uuid::Uuid) -> Result<Option<RecordedEvent>, StoreError>;

    /// Last position and hash (`Position(0)` and [`Hash::GENESIS`] for an empty log).
    async fn head(&self) -> Result<Head, StoreError>;

    /// The idempotency record stored for `(api_key_id, key)`, if any.
    async fn find_idempotency(
        &self,
        api_key_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// The upcasters applied on read.
    fn upcasters(&self) -> &Upcasters;

    /// Counters of the group-commit writer.
    fn writer_stats(&self) -> WriterStats;

    /// The events this process's writer committed last ([`Tail`]), if the store keeps them:
    /// [`read_page`] and [`read_categories`] answer from it what it holds.
    fn tail(&self) -> Option<&Tail> {
        None
    }

    /// A cheap round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;
}
