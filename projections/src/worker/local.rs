//! The in-process feed: reads the log from the store, page by page, and applies each page to
//! every projection. Used by the embedded deployment, by PostgreSQL without NATS, and by replay.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger::event::{Position, RecordedEvent};
use ledger::store::{EventStore, read_page};

use super::{Applied, WorkerError, apply, passes_over};

mod pipeline;
use crate::projection::Projection;
use crate::store::ReadStore;

/// Events read from the store per round.
pub const PAGE: u32 = 5_000;
/// Pause between rounds when caught up.
const IDLE: Duration = Duration::from_millis(20);
const BACKOFF: Duration = Duration::from_secs(1);
/// Projections applying a page at the same time (PostgreSQL).
const PARALLEL: usize = 4;
/// Idle rounds (of 20 ms) between two re-reads of the checkpoints from the database.
const IDLE_REFRESH_ROUNDS: u64 = 50;

/// Where a feed stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Follows the log forever (catches up, then waits for more).
    Head,
    /// Applies events up to and including this position.
    Position(i64),
    /// Applies events recorded at or before this moment.
    RecordedAt(DateTime<Utc>),
}

impl Until {
    /// Whether `e` is within the limit.
    #[must_use]
    pub fn admits(self, e: &RecordedEvent) -> bool {
        match self {
            Until::Head => true,
            Until::Position(p) => e.position.0 <= p,
            Until::RecordedAt(t) => e.recorded_at <= t,
        }
    }
}

/// Feeds a set of projections from the event store.
pub struct LocalFeed {
    read: ReadStore,
    events: Arc<dyn EventStore>,
    projections: Vec<Arc<dyn Projection>>,
    /// Last known checkpoint of each projection (refreshed from every commit).
    checkpoints: Option<Vec<i64>>,
    until: Until,
    page: u32,
    /// The next page, being read while the current one is applied: `(after, read)`.
    ahead: Option<(i64, Prefetch)>,
    /// Which projections failed in the last round.
    failed: Vec<bool>,
    /// Rounds in a row that found nothing new.
    idle_rounds: u64,
}

type Prefetch = tokio::task::JoinHandle<Result<Vec<RecordedEvent>, ledger::store::StoreError>>;

impl LocalFeed {
    #[must_use]
    pub fn new(
        read: ReadStore,
        events: Arc<dyn EventStore>,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Self {
        Self {
            read,
            events,
            failed: vec![false; projections.len()],
            projections,
            checkpoints: None,
            until: Until::Head,
            page: PAGE,
            ahead: None,
            idle_rounds: 0,
        }
    }

    #[must_use]
    pub fn until(mut self, until: Until) -> Self {
        self.until = until;
        self
    }

    #[must_use]
    pub fn page_size(mut self, page: u32) -> Self {
        self.page = page.clamp(1, 10_000);
        self
    }

    /// One round: the page after the lowest checkpoint of the projections that did not fail
    /// last time, applied to every projection (each skips what it already has; one that failed
    /// and is behind fills its gap from the store), so a projection that keeps failing does not
    /// hold the others back. Answers how many events the page held (0: caught up).
    ///
    /// # Errors
    /// [`WorkerError`] of a projection that failed; the others went on.
    pub async fn round(&mut self) -> Result<usize, WorkerError> {
        let known = match self.checkpoints.take() {
            Some(k) => k,
            None => {
                let mut k = Vec::with_capacity(self.projections.len());
                for p in &self.projections {
                    k.push(self.read.checkpoint(p.name()).await?);
                }
                k
            }
        };
        let healthy = known
            .iter()
            .zip(&self.failed)
            .filter(|(_, failed)| !**failed)
            .map(|(k, _)| *k)
            .min();
        let from = healthy.or_else(|| known.iter().copied().min()).unwrap_or(0);
        let read = match self.ahead.take() {
            Some((after, next)) if after == from => next
                .await
                .unwrap_or_else(|e| Err(ledger::store::StoreError::Unavailable(e.to_string()))),
            _ => read_page(self.events.as_ref(), Position(from), self.page).await,
        };
        let mut page = match read {
            Ok(page) => page,
            Err(e) => {
                self.checkpoints = Some(known);
                return Err(e.into());
            }
        };
        if page.len() == self.page as usize
            && let Some(last) = page.last().map(|e| e.position.0)
        {
            let (events, size) = (self.events.clone(), self.page);
            self.ahead = Some((
                last,
                tokio::spawn(async move { read_page(events.as_ref(), Position(last), size).await }),
            ));
        }
        let until = self.until;
        if let Some(cut) = page.iter().position(|e| !until.admits(e)) {
            page.truncate(cut);
        }
        let len = page.len();
        let mut next = known.clone();
        let mut failure = None;
        if let Some(last) = page.last().map(|e| e.position.0) {
            // Projections the page holds nothing new for are left alone; those it changes no
            // row of have their checkpoints moved together; the others apply it.
            let mut busy = Vec::new();
            let mut idle = Vec::new();
            for (i, p) in self.projections.iter().enumerate() {
                if known[i] >= last {
                    continue;
                }
                // A projection's panic is its own error (in `apply`'s task), not the feed's.
                let over = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    passes_over(p.as_ref(), &page, known[i])
                }));
                if matches!(over, Ok(true)) {
                    idle.push(i);
                } else {
                    busy.push(i);
                }
            }
            // The checkpoints move while the others apply the page (one held elsewhere delays
            // only itself); a projection whose checkpoint moved under the feed then applies it.
            let seen: Vec<(&'static str, i64)> = idle
                .iter()
                .map(|&i| (self.projections[i].name(), known[i]))
                .collect();
            let read = self.read.clone();
            let advance = tokio::spawn(async move { read.advance(&seen, last).await });
            let page = Arc::new(page);
            let mut outcomes: Vec<_> = busy
                .iter()
                .copied()
                .zip(self.apply_each(&busy, page.clone()).await)
                .collect();
            let advanced = match advance.await {
                Ok(done) => done.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let behind = match advanced {
                Ok(moved) => {
                    let mut behind = Vec::new();
                    for (&i, moved) in idle.iter().zip(moved) {
                        if moved {
                            next[i] = last;
                            self.failed[i] = false;
                        } else {
                            behind.push(i);
                        }
                    }
                    behind
                }
                Err(e) => {
                    tracing::warn!(error = %e, "moving checkpoints failed; applying instead");
                    idle
                }
            };
            outcomes.extend(
                behind
                    .iter()
                    .copied()
                    .zip(self.apply_each(&behind, page).await),
            );
            for (i, outcome) in outcomes {
                match outcome {
                    Ok(applied) => {
                        next[i] = applied.checkpoint;
                        self.failed[i] = false;
                    }
                    Err(e) => {
                        tracing::warn!(projection = self.projections[i].name(), error = %e, "projection failed");
                        self.failed[i] = true;
                        failure = Some(e);
                    }
                }
            }
        }
        // Caught up: now and then, re-read the checkpoints from the database, in case they
        // moved back (a replay's swap, rows lost by an asynchronous commit at a crash).
        if len == 0 {
            self.idle_rounds += 1;
            if self.idle_rounds.is_multiple_of(IDLE_REFRESH_ROUNDS) {
                self.checkpoints = None;
                return failure.map_or(Ok(0), Err);
            }
        } else {
            self.idle_rounds = 0;
        }
        self.checkpoints = Some(next);
        match failure {
            Some(e) => Err(e),
            None => Ok(len),
        }
    }

    /// Applies `page` to the projections `which`: on PostgreSQL each in its own task and
    /// transaction, at most [`PARALLEL`] at once (their I/O overlaps, their CPU work spreads over
    /// the cores); on SQLite (one write lock) one after the other, leaving room to the other
    /// writers — each in a task of its own all the same, so that a panic is one projection's
    /// error. Answers each one's outcome, in the order of `which`.
    async fn apply_each(
        &self,
        which: &[usize],
        page: Arc<Vec<RecordedEvent>>,
    ) -> Vec<Result<Applied, WorkerError>> {
        let parallel = if self.read.concurrent_writes() {
            PARALLEL
        } else {
            1
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
        let tasks: Vec<_> = which
            .iter()
            .map(|&i| {
                let (read, events, p, page, permits) = (
                    self.read.clone(),
                    self.events.clone(),
                    self.projections[i].clone(),
                    page.clone(),
                    permits.clone(),
                );
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    apply(&read, events.as_ref(), p.as_ref(), &page).await
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(tasks.len());
        for task in tasks {
            outcomes.push(
                task.await
                    .unwrap_or_else(|e| Err(WorkerError::Task(e.to_string()))),
            );
        }
        outcomes
    }

    /// Applies everything up to the head (or the `until` limit): [`Self::catch_up_with`]
    /// without progress reports. Answers how many events were read.
    ///
    /// # Errors
    /// The first failure.
    pub async fn catch_up(&mut self) -> Result<u64, WorkerError> {
        self.catch_up_with(&|_| {}).await
    }

    /// The lowest checkpoint of the feed's projections, as last seen.
    #[must_use]
    pub fn position(&self) -> i64 {
        self.checkpoints
            .as_ref()
            .and_then(|k| k.iter().copied().min())
            .unwrap_or(0)
    }

    /// Follows the log forever; errors are logged and retried after a pause.
    pub async fn run(mut self) {
        loop {
            match self.round().await {
                Ok(0) => tokio::time::sleep(IDLE).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "projection feed round failed; will retry");
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    }
}
