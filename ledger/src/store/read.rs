//! Reading the whole log: paged, in position order, with bounded memory.

use futures_util::stream::{self, Stream, StreamExt};

use super::{CategoryPage, EventStore, StoreError};
use crate::chain::{ChainBreak, ChainVerifier, Hash, VerifyReport};
use crate::event::{Position, RecordedEvent};

/// Up to `limit` events after `after`, upcast. The store's [`Tail`](super::Tail) answers the run
/// of them it holds; the log the rest (past the run's end: another process's events, or ours not
/// in the tail yet — when caught up, one query that finds nothing).
pub async fn read_page(
    store: &dyn EventStore,
    after: Position,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut page = store
        .tail()
        .and_then(|t| t.page(after, limit))
        .unwrap_or_default();
    let (from, left) = match page.last() {
        Some(last) => (last.position, limit.saturating_sub(page.len() as u32)),
        None => (after, limit),
    };
    if left > 0 {
        page.extend(store.read_page_raw(from, left).await?);
    }
    let up = store.upcasters();
    Ok(page.into_iter().map(|e| up.apply(e)).collect())
}

/// [`EventStore::read_categories`], each event upcast; from the store's
/// [`Tail`](super::Tail) when it holds the next position (as [`read_page`]).
///
/// # Errors
/// The store's.
pub async fn read_categories(
    store: &dyn EventStore,
    after: Position,
    limit: u32,
    categories: &[&str],
) -> Result<CategoryPage, StoreError> {
    let mut page = match store
        .tail()
        .and_then(|t| t.categories(after, limit, categories))
    {
        // The run the tail holds, then the log past it (as `read_page`).
        Some(mut held) if !held.more => {
            let left = limit.saturating_sub(held.events.len() as u32);
            let rest = store
                .read_categories(held.through, left, categories)
                .await?;
            held.events.extend(rest.events);
            held.through = rest.through;
            held.more = rest.more;
            held
        }
        Some(held) => held,
        None => store.read_categories(after, limit, categories).await?,
    };
    let up = store.upcasters();
    page.events = page.events.into_iter().map(|e| up.apply(e)).collect();
    Ok(page)
}

/// Every event after `after`, in position order, fetched `page_size` at a time: memory stays
/// bounded by one page however long the log is. The stream ends at the head as it was when the
/// last page was read.
pub fn read_all(
    store: &dyn EventStore,
    after: Position,
    page_size: u32,
) -> impl Stream<Item = Result<RecordedEvent, StoreError>> + Send + '_ {
    let page_size = page_size.clamp(1, 10_000);
    stream::unfold(Some(after), move |cursor| async move {
        let after = cursor?;
        match read_page(store, after, page_size).await {
            Ok(page) if page.is_empty() => None,
            Ok(page) => {
                let next = page.last().map(|e| e.position);
                let full = page.len() as u32 == page_size;
                let items: Vec<Result<RecordedEvent, StoreError>> =
                    page.into_iter().map(Ok).collect();
                Some((stream::iter(items), if full { next } else { None }))
            }
            Err(e) => Some((stream::iter(vec![Err(e)]), None)),
        }
    })
    .flatten()
}

/// Verifies the hash chain from position `from` (≥ 1) to the head.
///
/// The chain is checked against the stored bytes (no upcasting). Starting in the middle trusts the
/// stored hash of the event before `from`; starting at 1 trusts nothing.
pub async fn verify_chain(
    store: &dyn EventStore,
    from: Position,
) -> Result<VerifyReport, StoreError> {
    let from = Position(from.0.max(1));
    let prev = if from.0 == 1 {
        Hash::GENESIS
    } else {
        match store.read_page_raw(Position(from.0 - 2), 1).await?.pop() {
            Some(e) if e.position.0 == from.0 - 1 => e.hash,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "no event at position {} to start from",
                    from.0 - 1
                )));
            }
        }
    };
    let head = store.head().await?;
    let mut verifier = ChainVerifier::new(from, prev);
    let mut after = Position(from.0 - 1);
    loop {
        // Appends that land while verifying are left for the next run.
        let mut page = store.read_page_raw(after, 1_000).await?;
        page.retain(|e| e.position <= head.position);
        let Some(last) = page.last() else { break };
        after = last.position;
        if !page.iter().all(|e| verifier.feed(e)) {
            break;
        }
    }
    let mut report = verifier.finish();
    if report.first_break.is_none()
        && (report.last_position, report.last_hash) != (head.position, head.hash)
    {
        // Events missing at the tail, or a head that does not match the last event.
        report.first_break = Some(ChainBreak {
            position: report.last_position.next(),
            reason: format!(
                "the log ends at position {} but the ledger head says {}",
                report.last_position, head.position
            ),
        });
    }
    Ok(report)
}
