//! What a projection is: a pure function of `(read set, event)`.
//!
//! A projection says which read-model rows an event touches ([`Projection::reads`]); the worker
//! loads them into a [`ReadSet`] and calls [`Projection::apply`], which changes the set without
//! any I/O, clock or randomness. The worker then writes what changed and the projection's
//! checkpoint in one transaction. Replaying the log therefore rebuilds the same rows.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use ledger::event::RecordedEvent;
use serde_json::value::RawValue;

/// Where a projection keeps its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Documents by id (`id`, `customer`, `status`, `created`, `position`, `body`).
    Docs,
    /// Documents (the projection's working state) and append-only journal lines.
    Journal,
}

/// One read-model document: the columns lists filter on, and the body.
#[derive(Debug, Clone)]
pub struct Doc {
    pub customer: Option<String>,
    pub status: Option<String>,
    /// RFC 3339 UTC with six fractional digits (sorts as text).
    pub created: String,
    /// Position of the last event that changed it.
    pub position: i64,
    /// JSON text, as stored: written once per batch, decoded straight into a typed state.
    pub body: Box<RawValue>,
}

/// Two documents are the same row: the same columns and the same body text.
impl PartialEq for Doc {
    fn eq(&self, other: &Self) -> bool {
        self.customer == other.customer
            && self.status == other.status
            && self.created == other.created
            && self.position == other.position
            && self.body.get() == other.body.get()
    }
}

impl Doc {
    /// The body as a `T`.
    ///
    /// # Errors
    /// The body is not a `T`.
    pub fn body_as<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.body.get())
    }
}

/// `value` as a document body.
///
/// # Errors
/// `value` does not serialize (a map with non-string keys).
pub fn body_of<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value)
}

/// One line of a journal entry. An entry's lines share `position` and balance per currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLine {
    pub position: i64,
    /// Line number within the entry (1-based).
    pub line: i32,
    /// When the money moved (the event's business time), RFC 3339 as in [`Doc::created`].
    pub at: String,
    /// The event type that posted it (`InvoiceFinalized`, `ChargeSucceeded`, …).
    pub entry: String,
    /// `receivable:cus_…`, `cash:sandbox:usd`, `revenue`, `tax_payable:DE`, …
    pub account: String,
    pub currency: String,
    pub debit: i64,
    pub credit: i64,
    /// The customer the entry concerns, if any (the customer subledger).
    pub customer: Option<String>,
}

/// The rows a batch of events may read and change.
#[derive(Debug, Default)]
pub struct ReadSet {
    docs: HashMap<String, Option<Doc>, RandomState>,
    changed: HashSet<String, RandomState>,
    /// Ids the store held when loaded.
    stored: HashSet<String, RandomState>,
    /// Stored ids removed by the batch.
    removed: HashSet<String, RandomState>,
    journal: Vec<JournalLine>,
}

/// A projection could not apply an event: the worker stops there (and retries later) rather
/// than skip money.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("{projection}: cannot apply {event_type} at position {position}: {reason}")]
    Unreadable {
        projection: &'static str,
        event_type: String,
        position: i64,
        reason: String,
    },
    #[error("{projection}: document {id} was not loaded before apply (a bug in `reads`)")]
    NotLoaded {
        projection: &'static str,
        id: String,
    },
}

impl ProjectionError {
    /// `event` cannot be applied by `projection`.
    #[must_use]
    pub fn unreadable(projection: &'static str, event: &RecordedEvent, reason: String) -> Self {
        ProjectionError::Unreadable {
            projection,
            event_type: event.event_type.clone(),
            position: event.position.0,
            reason,
        }
    }
}

impl ReadSet {
    /// The document `key` of `projection` as a `T` (the default when absent): a projection's
    /// working note or counter.
    ///
    /// # Errors
    /// Not loaded, or not a `T`.
    pub fn note<T: serde::de::DeserializeOwned + Default>(
        &self,
        projection: &'static str,
        event: &RecordedEvent,
        key: &str,
    ) -> Result<T, ProjectionError> {
        match self.get(projection, key)? {
            None => Ok(T::default()),
            Some(doc) => doc
                .body_as()
                .map_err(|e| ProjectionError::unreadable(projection, event, format!("{key}: {e}"))),
        }
    }

    /// Keeps `value` as document `key` of `projection`, changed by `event` (its creation time
    /// kept from the first version).
    ///
    /// # Errors
    /// Not loaded, or not serializable.
    pub fn keep<T: serde::Serialize>(
        &mut self,
        projection: &'static str,
        event: &RecordedEvent,
        key: String,
        customer: Option<String>,
        value: &T,
    ) -> Result<(), ProjectionError> {
        let body = body_of(value)
            .map_err(|e| ProjectionError::unreadable(projection, event, e.to_string()))?;
        let created = match self.get(projection, &key)? {
            Some(d) => d.created.clone(),
            None => timestamp(event.occurred_at),
        };
        self.put(
            key,
            Doc {
                customer,
                status: None,
                created,
                position: event.position.0,
                body,
            },
        );
        Ok(())
    }

    /// Whether `id` was loaded (found or known to be absent).
    #[must_use]
    pub fn has_loaded(&self, id: &str) -> bool {
        self.docs.contains_key(id)
    }

    /// Records what the store holds for `id` (done by the worker before `apply`).
    pub fn load(&mut self, id: String, doc: Option<Doc>) {
        if !self.docs.contains_key(&id) {
            if doc.is_some() {
                self.stored.insert(id.clone());
            }
            self.docs.insert(id, doc);
        }
    }

    /// Whether the batch changed nothing (then only its checkpoint would be written).
    #[must_use]
    pub fn unchanged(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty() && self.journal.is_empty()
    }

    /// Takes document `id` as `earlier` (a batch not committed yet) left it, if it had it.
    pub fn carry(&mut self, earlier: &ReadSet, id: &str) -> bool {
        match earlier.docs.get(id) {
            Some(doc) => {
                self.load(id.to_string(), doc.clone());
                true
            }
            None => false,
        }
    }

    /// The document `id` as the batch has it so far.
    ///
    /// # Errors
    /// [`ProjectionError::NotLoaded`] when `id` was not among the ids `reads` named.
    pub fn get(&self, projection: &'static str, id: &str) -> Result<Option<&Doc>, ProjectionError> {
        match self.docs.get(id) {
            Some(doc) => Ok(doc.as_ref()),
            None => Err(ProjectionError::NotLoaded {
                projection,
                id: id.to_string(),
            }),
        }
    }

    pub fn put(&mut self, id: String, doc: Doc) {
        self.removed.remove(&id);
        self.changed.insert(id.clone());
        self.docs.insert(id, Some(doc));
    }

    /// Removes document `id` (kept as absent for the rest of the batch).
    pub fn remove(&mut self, id: &str) {
        self.changed.remove(id);
        if self.stored.contains(id) {
            self.removed.insert(id.to_string());
        }
        self.docs.insert(id.to_string(), None);
    }

    /// The stored documents the batch removed, in id order.
    pub fn removed_docs(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.removed.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    pub fn post(&mut self, line: JournalLine) {
        self.journal.push(line);
    }

    /// The documents changed by the batch, in id order (two writers lock rows in one order).
    pub fn changed_docs(&self) -> Vec<(&str, &Doc)> {
        let mut docs: Vec<(&str, &Doc)> = self
            .changed
            .iter()
            .filter_map(|id| {
                self.docs
                    .get(id)
                    .and_then(Option::as_ref)
                    .map(|d| (id.as_str(), d))
            })
            .collect();
        docs.sort_unstable_by_key(|(id, _)| *id);
        docs
    }

    /// Whether the store holds `id` when the batch commits: it did when read, or the batch
    /// before it (committed first) wrote it. Otherwise a write of it inserts a row.
    #[must_use]
    pub fn was_stored(&self, id: &str) -> bool {
        self.stored.contains(id)
    }

    pub fn journal(&self) -> &[JournalLine] {
        &self.journal
    }

    /// The journal lines posted so far, leaving none.
    pub fn take_journal(&mut self) -> Vec<JournalLine> {
        std::mem::take(&mut self.journal)
    }

    /// Forgets everything (after a commit), keeping the allocations.
    pub fn clear(&mut self) {
        self.docs.clear();
        self.changed.clear();
        self.stored.clear();
        self.removed.clear();
        self.journal.clear();
    }
}

/// A read model built from the log.
pub trait Projection: Send + Sync {
    /// Unique name: the checkpoint row and the table (`rm_<name>`).
    fn name(&self) -> &'static str;

    fn table(&self) -> Table;

    /// Whether the read API lists its documents (then they are indexed by creation time and by
    /// customer); a projection's private working state is not.
    fn listed(&self) -> bool {
        false
    }

    /// The document ids `apply` may read for `event` (none for events it ignores).
    fn reads(&self, event: &RecordedEvent) -> Vec<String>;

    /// The one id among [`Self::reads`] of `event` that cannot exist before it, if any: a
    /// document that only its own stream's events write, when `event` is that stream's first
    /// (`stream_version` 1). The worker takes it as absent instead of asking the store — on a
    /// log of new charges, most of what a batch reads.
    fn born(&self, _event: &RecordedEvent) -> Option<String> {
        None
    }

    /// Applies one event. Pure: the outcome depends only on the set and the event.
    ///
    /// # Errors
    /// [`ProjectionError`] when the event cannot be read; nothing of the batch is committed.
    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError>;

    /// Applies `events` in order: the same outcome as [`Self::apply`] on each, which is what it
    /// does unless a projection folds a batch faster in one pass.
    ///
    /// # Errors
    /// As [`Self::apply`], at the first event that cannot be applied.
    fn apply_all(
        &self,
        set: &mut ReadSet,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        events.iter().try_for_each(|e| self.apply(set, e))
    }
}

/// The ids `events` read that are still to be read from the store: those born in `events`
/// ([`Projection::born`]) are taken into `set` as absent, and not asked for.
pub fn reads_of<'e>(
    projection: &dyn Projection,
    set: &mut ReadSet,
    events: impl Iterator<Item = &'e RecordedEvent>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for event in events {
        if let Some(id) = projection.born(event)
            && !set.has_loaded(&id)
        {
            set.load(id, None);
        }
        ids.extend(projection.reads(event));
    }
    ids.retain(|id| !set.has_loaded(id));
    ids
}

/// RFC 3339 UTC with six fractional digits, as every text timestamp of the read models.
#[must_use]
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
