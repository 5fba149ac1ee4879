//! A batch folded while the one before it commits: the same rows as [`super::apply`], with the
//! folding of batch N+1 overlapping the commit of batch N.
//!
//! Batch N+1 is folded after the last position of batch N, before N is committed: the documents
//! N holds are taken from N's set (what N will have written), the others from the rows as
//! committed now, which N does not touch. It is committed only if the checkpoint is then the one
//! it expects (N committed, nobody else moved it); otherwise the caller applies it again through
//! [`super::apply`]. A batch that changes nothing need not be committed: the next one's
//! checkpoint covers it.

use ledger::event::RecordedEvent;
use ledger::store::EventStore;

use super::{WorkerError, fill_gaps};
use crate::projection::{Projection, ReadSet, reads_of};
use crate::store::ReadStore;

/// A batch folded, not yet committed.
pub struct Ahead {
    /// The rows it writes, and the documents it read.
    pub set: ReadSet,
    /// The checkpoint the store must have when it commits: the position it was folded after,
    /// or an earlier one when the batches in between changed nothing and were not committed.
    pub expect: i64,
    /// Its last position: the checkpoint once committed.
    pub last: i64,
}

/// Folds the events of `delivered` after `after` (gaps filled from `events`), to be committed
/// over checkpoint `expect`; `None` when there are none. `earlier`: the set of the batch ending
/// at `after`, if it is not committed yet.
///
/// # Errors
/// The stores', or the projection's.
pub async fn fold_ahead(
    read: &ReadStore,
    events: &dyn EventStore,
    projection: &dyn Projection,
    delivered: &[RecordedEvent],
    (after, expect): (i64, i64),
    earlier: Option<&ReadSet>,
) -> Result<Option<Ahead>, WorkerError> {
    let mut fresh: Vec<&RecordedEvent> =
        delivered.iter().filter(|e| e.position.0 > after).collect();
    fresh.sort_by_key(|e| e.position);
    fresh.dedup_by_key(|e| e.position);
    let (batch, _) = fill_gaps(events, after, fresh).await?;
    let Some(last) = batch.last().map(|e| e.position.0) else {
        return Ok(None);
    };
    let mut set = ReadSet::default();
    let ids = reads_of(projection, &mut set, batch.iter().map(AsRef::as_ref));
    let from_store = match earlier {
        Some(earlier) => ids
            .into_iter()
            .filter(|id| !set.carry(earlier, id))
            .collect(),
        None => ids,
    };
    read.load(projection.name(), &mut set, from_store).await?;
    let refs: Vec<&RecordedEvent> = batch.iter().map(AsRef::as_ref).collect();
    projection.apply_all(&mut set, &refs)?;
    Ok(Some(Ahead { set, expect, last }))
}

/// Commits `ahead` with its checkpoint if the checkpoint is still the one it expects. Answers
/// whether it did.
///
/// # Errors
/// The database's; then nothing of the batch is kept.
pub async fn commit_ahead(
    read: &ReadStore,
    projection: &dyn Projection,
    ahead: &Ahead,
) -> Result<bool, WorkerError> {
    let tx = read.begin(projection.name()).await?;
    if tx.checkpoint() != ahead.expect {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit(&ahead.set, ahead.last).await?;
    Ok(true)
}
