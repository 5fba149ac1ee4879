//! Catching up without rounds: one reader reads each page of the log once and hands it to every
//! projection, and each projection applies its pages one after another in a task of its own.
//!
//! A round waits for its slowest projection before the next page starts, so while the slowest
//! one commits, the others and this process sit idle. Here a projection only waits for its own
//! previous page; the slowest is at most [`DEPTH`] pages (and the two it folds and commits)
//! behind the reader (bounded channels), so memory stays flat. Folds and commits share the
//! pool's connections but [`SPARE_CONNECTIONS`]. A page lands through `ahead::commit_ahead` (checkpoint
//! locked and checked, rows and checkpoint in one commit) or, when the checkpoint moved under
//! it, through [`apply`], as in a round.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ledger::event::{Position, RecordedEvent};
use ledger::store::{EventStore, read_page};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::LocalFeed;
use crate::projection::{Projection, ReadSet};
use crate::store::ReadStore;
use crate::worker::ahead::{Ahead, commit_ahead, fold_ahead};
use crate::worker::{WorkerError, apply};

/// Pages handed out and not yet taken by every projection, at most.
const DEPTH: usize = 4;

/// Connections of the pool left to the reader and gap fills; folds and commits (each
/// projection may have one of each in flight) share the rest.
const SPARE_CONNECTIONS: u32 = 2;

type Page = Arc<Vec<RecordedEvent>>;

/// One projection's side of the pipeline.
struct One {
    read: ReadStore,
    events: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    /// Every projection's last committed position; this one's at `index`.
    applied: Arc<Vec<AtomicI64>>,
    index: usize,
    /// Shared by every projection of the feed: the pool's connections but the spare ones.
    permits: Arc<Semaphore>,
}

/// The batch being committed, in a task of its own, and the page it came from.
struct Committing {
    commit: JoinHandle<Result<bool, WorkerError>>,
    ahead: Arc<Ahead>,
    page: Page,
}

impl One {
    /// Applies the pages of `pages` after checkpoint `after`: each page is folded while the
    /// one before it commits; one that changes nothing is not committed (the next commit's
    /// checkpoint covers it, or a last commit of the checkpoint alone).
    async fn run(self, mut pages: mpsc::Receiver<Page>, mut after: i64) -> Result<(), WorkerError> {
        let mut committing: Option<Committing> = None;
        // The checkpoint as stored once `committing` lands.
        let mut stored = after;
        let mut last_page = None;
        while let Some(page) = pages.recv().await {
            let earlier = committing.as_ref().map(|c| &c.ahead.set);
            let folded = {
                let _permit = self.permits.acquire().await;
                fold_ahead(
                    &self.read,
                    self.events.as_ref(),
                    self.projection.as_ref(),
                    &page,
                    (after, stored),
                    earlier,
                )
                .await
            };
            let folded = match folded {
                Ok(folded) => folded,
                Err(e) => {
                    // Not before the batch in flight has landed (or not): nothing keeps
                    // writing after the caller has heard the error.
                    if let Some(c) = committing.take() {
                        let _ = self.landed(c).await;
                    }
                    return Err(e);
                }
            };
            if let Some(c) = committing.take()
                && !self.landed(c).await?
            {
                // The checkpoint moved under the batch (another worker, a swap): this page
                // was folded on top of it, so it goes the usual way too.
                after = self.apply(&page).await?;
                stored = after;
                continue;
            }
            let Some(ahead) = folded else {
                continue;
            };
            after = ahead.last;
            if ahead.set.unchanged() {
                // Applied, as far as the rows go; shown as such.
                self.applied[self.index].store(after, Ordering::Release);
                last_page = Some(page);
                continue;
            }
            stored = after;
            let ahead = Arc::new(ahead);
            let (read, projection, batch, permits) = (
                self.read.clone(),
                self.projection.clone(),
                ahead.clone(),
                self.permits.clone(),
            );
            let commit = tokio::spawn(async move {
                let _permit = permits.acquire().await;
                commit_ahead(&read, projection.as_ref(), &batch).await
            });
            committing = Some(Committing {
                commit,
                ahead,
                page,
            });
        }
        if let Some(c) = committing {
            self.landed(c).await?;
        }
        if after != stored {
            // Pages that changed nothing since the last commit: their checkpoint alone.
            let checkpoint = Ahead {
                set: ReadSet::default(),
                expect: stored,
                last: after,
            };
            if commit_ahead(&self.read, self.projection.as_ref(), &checkpoint).await? {
                self.applied[self.index].store(after, Ordering::Release);
            } else if let Some(page) = last_page {
                self.apply(&page).await?;
            }
        }
        Ok(())
    }

    /// Waits for a commit; if the checkpoint had moved, applies its page the usual way. Answers
    /// whether the batch landed as folded.
    async fn landed(&self, c: Committing) -> Result<bool, WorkerError> {
        let done = c
            .commit
            .await
            .unwrap_or_else(|e| Err(WorkerError::Task(e.to_string())))?;
        if done {
            self.applied[self.index].store(c.ahead.last, Ordering::Release);
        } else {
            self.apply(&c.page).await?;
        }
        Ok(done)
    }

    /// Applies `page` through [`apply`] until the checkpoint is at its end (a long gap before
    /// it is filled over several batches); answers the checkpoint after it.
    async fn apply(&self, page: &[RecordedEvent]) -> Result<i64, WorkerError> {
        let end = page.last().map_or(0, |e| e.position.0);
        let mut checkpoint = i64::MIN;
        loop {
            let done = {
                let _permit = self.permits.acquire().await;
                apply(
                    &self.read,
                    self.events.as_ref(),
                    self.projection.as_ref(),
                    page,
                )
                .await?
            };
            self.applied[self.index].store(done.checkpoint, Ordering::Release);
            if done.checkpoint >= end || done.checkpoint == checkpoint {
                return Ok(done.checkpoint);
            }
            checkpoint = done.checkpoint;
        }
    }
}

impl LocalFeed {
    /// Applies everything up to the head (or the `until` limit) to every projection, each at its
    /// own pace; `progress` hears the lowest position all of them have applied, after each page
    /// read. On SQLite (one writer at a time) this is [`LocalFeed::round`] until caught up.
    /// Answers how many events were read.
    ///
    /// # Errors
    /// A projection's failure (the first in projection order; the others stop at a page boundary, each committed up
    /// to where it got), or the store's.
    pub async fn catch_up_with(
        &mut self,
        progress: &(dyn Fn(i64) + Send + Sync),
    ) -> Result<u64, WorkerError> {
        if !self.read.concurrent_writes() {
            let mut total = 0u64;
            loop {
                let n = self.round().await?;
                progress(self.position());
                if n == 0 {
                    return Ok(total);
                }
                total += n as u64;
            }
        }
        let mut known = Vec::with_capacity(self.projections.len());
        for p in &self.projections {
            known.push(self.read.checkpoint(p.name()).await?);
        }
        let applied: Arc<Vec<AtomicI64>> =
            Arc::new(known.iter().map(|k| AtomicI64::new(*k)).collect());
        let connections = self
            .read
            .max_connections()
            .saturating_sub(SPARE_CONNECTIONS)
            .max(1);
        let permits = Arc::new(Semaphore::new(connections as usize));
        let mut senders = Vec::with_capacity(self.projections.len());
        let mut tasks = Vec::with_capacity(self.projections.len());
        for (i, p) in self.projections.iter().enumerate() {
            let (tx, rx) = mpsc::channel::<Page>(DEPTH);
            senders.push(tx);
            let one = One {
                read: self.read.clone(),
                events: self.events.clone(),
                projection: p.clone(),
                applied: applied.clone(),
                index: i,
                permits: permits.clone(),
            };
            tasks.push(tokio::spawn(one.run(rx, known[i])));
        }
        let lowest = || {
            applied
                .iter()
                .map(|a| a.load(Ordering::Acquire))
                .min()
                .unwrap_or(0)
        };
        let from = known.iter().copied().min().unwrap_or(0);
        let read = self.hand_out(from, &senders, &lowest, progress).await;
        // Every projection finishes the pages it holds; then the first failure, if any.
        drop(senders);
        let mut failure = None;
        for task in tasks {
            let outcome = task
                .await
                .unwrap_or_else(|e| Err(WorkerError::Task(e.to_string())));
            if let (Err(e), None) = (outcome, &failure) {
                failure = Some(e);
            }
        }
        let next: Vec<i64> = applied.iter().map(|a| a.load(Ordering::Acquire)).collect();
        progress(next.iter().copied().min().unwrap_or(0));
        let outcome = match failure {
            Some(e) => Err(e),
            None => read.map_err(WorkerError::from),
        };
        // After a failure, the next round reads the checkpoints again (pages that changed
        // nothing may have been counted and not committed).
        self.checkpoints = outcome.is_ok().then_some(next);
        outcome
    }

    /// Reads the log after `from`, a page at a time, and hands each page to every projection;
    /// stops at the head, at the `until` limit, or when a projection has stopped taking pages.
    async fn hand_out(
        &self,
        from: i64,
        senders: &[mpsc::Sender<Page>],
        lowest: &(dyn Fn() -> i64 + Sync),
        progress: &(dyn Fn(i64) + Send + Sync),
    ) -> Result<u64, ledger::store::StoreError> {
        let mut after = from;
        let mut total = 0u64;
        loop {
            let mut page = read_page(self.events.as_ref(), Position(after), self.page).await?;
            let full = page.len() == self.page as usize;
            let until = self.until;
            let cut = page.iter().position(|e| !until.admits(e));
            if let Some(cut) = cut {
                page.truncate(cut);
            }
            let Some(last) = page.last().map(|e| e.position.0) else {
                return Ok(total);
            };
            after = last;
            total += page.len() as u64;
            let page = Arc::new(page);
            for tx in senders {
                if tx.send(page.clone()).await.is_err() {
                    // That projection failed: its error is what the caller hears.
                    return Ok(total);
                }
            }
            progress(lowest());
            if !full || cut.is_some() {
                return Ok(total);
            }
        }
    }
}
