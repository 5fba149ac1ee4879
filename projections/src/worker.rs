//! Applying events to a projection exactly once, whatever the delivery.
//!
//! [`apply`] is the one place a batch lands: it locks the projection's checkpoint, drops events
//! at or below it (redeliveries), fills any gap from the event store (a lost or filtered
//! message), loads the documents the events touch, applies them (pure), and commits the rows
//! with the new checkpoint. Both feeds call it: [`local`] (reads the store, embedded and
//! PostgreSQL without NATS) and [`nats`] (JetStream durable pull consumers).

pub mod ahead;
pub mod local;
pub mod nats;

use std::borrow::Cow;

use ledger::event::{Position, RecordedEvent};
use ledger::store::{EventStore, StoreError, read_page};

use crate::projection::{Projection, ProjectionError, ReadSet, reads_of};
use crate::store::{ReadStore, ReadStoreError, ReadTx};

/// Tries of a batch whose checkpoint moved back under it.
const MOVED_RETRIES: usize = 3;

/// Most events one batch reads from the store to fill gaps.
const FILL_MAX: usize = 20_000;

/// Most events fetched from the store to fill one gap at a time.
const GAP_PAGE: u32 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Read(#[from] ReadStoreError),
    #[error("event store: {0}")]
    Events(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("the event store has no event at position {0} (below its head)")]
    Missing(i64),
    #[error("projection task: {0}")]
    Task(String),
    #[error("{0}: the checkpoint kept moving back under the batch (a replay's swap?)")]
    Moved(&'static str),
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Events applied (delivered ones and gap fillers).
    pub applied: usize,
    /// Delivered events at or below the checkpoint, dropped.
    pub skipped: usize,
    /// Events read from the store to fill gaps.
    pub filled: usize,
    /// The checkpoint after the batch.
    pub checkpoint: i64,
}

/// Applies `delivered` (any order, duplicates and gaps allowed) to `projection` in one
/// transaction, filling gaps from `events`.
///
/// Gaps are read from the store *before* the transaction takes its connection: a transaction
/// that waited for a second connection of the same pool could wait for ever once every
/// connection is held by such a transaction. If the checkpoint moved meanwhile (another worker,
/// a replay's swap), the batch is cut to what follows the locked checkpoint, or left for the
/// next call when a gap opened.
///
/// # Errors
/// [`WorkerError`]; then nothing of the batch is kept and the checkpoint has not moved.
pub async fn apply(
    read: &ReadStore,
    events: &dyn EventStore,
    projection: &dyn Projection,
    delivered: &[RecordedEvent],
) -> Result<Applied, WorkerError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match attempt(read, events, projection, delivered).await? {
            // The checkpoint moved back between the read and the lock (a swap): read again.
            None if tries < MOVED_RETRIES => {}
            None => return Err(WorkerError::Moved(projection.name())),
            Some(applied) => return Ok(applied),
        }
    }
}

/// One try of [`apply`]; `None` when a gap opened under it.
async fn attempt(
    read: &ReadStore,
    events: &dyn EventStore,
    projection: &dyn Projection,
    delivered: &[RecordedEvent],
) -> Result<Option<Applied>, WorkerError> {
    let seen = read.checkpoint(projection.name()).await?;
    let mut fresh: Vec<&RecordedEvent> = delivered.iter().filter(|e| e.position.0 > seen).collect();
    fresh.sort_by_key(|e| e.position);
    fresh.dedup_by_key(|e| e.position);
    let (mut batch, mut filled) = fill_gaps(events, seen, fresh).await?;
    let mut tx = read.begin(projection.name()).await?;
    let checkpoint = tx.checkpoint();
    if checkpoint != seen {
        batch.retain(|e| e.position.0 > checkpoint);
        let contiguous = batch.first().is_none_or(|e| e.position.0 == checkpoint + 1);
        if !contiguous {
            tx.rollback().await?;
            return Ok(None);
        }
        filled = batch.iter().filter(|e| matches!(e, Cow::Owned(_))).count();
    }
    let skipped = delivered
        .iter()
        .filter(|e| e.position.0 <= checkpoint)
        .count();
    let Some(last) = batch.last().map(|e| e.position.0) else {
        tx.rollback().await?;
        return Ok(Some(Applied {
            skipped,
            checkpoint,
            ..Applied::default()
        }));
    };
    match fold(&mut tx, projection, &batch).await {
        Ok(set) => {
            tx.commit(&set, last).await?;
            Ok(Some(Applied {
                applied: batch.len(),
                skipped,
                filled,
                checkpoint: last,
            }))
        }
        Err(e) => {
            // Release the checkpoint row now; the error is what the caller needs.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// Loads what `batch` touches and applies it (pure).
async fn fold(
    tx: &mut ReadTx,
    projection: &dyn Projection,
    batch: &[Cow<'_, RecordedEvent>],
) -> Result<ReadSet, WorkerError> {
    let mut set = ReadSet::default();
    let ids = reads_of(projection, &mut set, batch.iter().map(AsRef::as_ref));
    tx.load(&mut set, ids).await?;
    let events: Vec<&RecordedEvent> = batch.iter().map(AsRef::as_ref).collect();
    projection.apply_all(&mut set, &events)?;
    Ok(set)
}

/// Whether the events of `page` (sorted) after `after` change none of `projection`'s rows: they
/// follow `after` without a gap, read no stored document, and applied to nothing they change
/// nothing. Its checkpoint can then simply move to the page's end ([`ReadStore::advance`]) — no
/// transaction of its own. (No such events: `false`.)
#[must_use]
pub fn passes_over(projection: &dyn Projection, page: &[RecordedEvent], after: i64) -> bool {
    let start = page.partition_point(|e| e.position.0 <= after);
    let fresh = &page[start..];
    let contiguous = fresh
        .iter()
        .zip(after..)
        .all(|(e, before)| before.checked_add(1) == Some(e.position.0));
    if fresh.is_empty()
        || !contiguous
        || fresh
            .iter()
            .any(|e| projection.born(e).is_some() || !projection.reads(e).is_empty())
    {
        return false;
    }
    let mut set = ReadSet::default();
    let events: Vec<&RecordedEvent> = fresh.iter().collect();
    matches!(projection.apply_all(&mut set, &events), Ok(()) if set.unchanged())
}

/// `fresh` (sorted, above `checkpoint`) with every missing position before its last one read
/// from the store: a contiguous run from `checkpoint + 1`.
async fn fill_gaps<'e>(
    events: &dyn EventStore,
    checkpoint: i64,
    fresh: Vec<&'e RecordedEvent>,
) -> Result<(Vec<Cow<'e, RecordedEvent>>, usize), WorkerError> {
    let mut out = Vec::with_capacity(fresh.len());
    let mut filled = 0;
    let mut next = checkpoint + 1;
    for e in fresh {
        while next < e.position.0 {
            if filled >= FILL_MAX {
                // A long gap is filled over several batches: the rest of this delivery waits
                // (a JetStream batch is then not acknowledged and comes again).
                return Ok((out, filled));
            }
            let want = u32::try_from(e.position.0 - next)
                .unwrap_or(GAP_PAGE)
                .min(GAP_PAGE);
            let page = read_page(events, Position(next - 1), want).await?;
            if page.first().map(|p| p.position.0) != Some(next) {
                return Err(WorkerError::Missing(next));
            }
            for p in page {
                if p.position.0 >= e.position.0 {
                    break;
                }
                next = p.position.0 + 1;
                filled += 1;
                out.push(Cow::Owned(p));
            }
        }
        next = e.position.0 + 1;
        out.push(Cow::Borrowed(e));
    }
    Ok((out, filled))
}
