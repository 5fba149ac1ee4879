//! The in-process feed: reads the log from the store, page by page, and applies each page to
//! every projection. Used by the embedded deployment, by PostgreSQL without NATS, and by replay.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ledger::event::{Position, RecordedEvent};
use ledger::store::{EventStore, read_page};

use super::{WorkerError, apply};
use crate::projection::Projection;
use crate::store::ReadStore;

/// Events read from the store per round.
pub const PAGE: u32 = 1_000;
/// Pause between rounds when caught up.
const IDLE: Duration = Duration::from_millis(20);
const BACKOFF: Duration = Duration::from_secs(1);

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
}

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
            projections,
            checkpoints: None,
            until: Until::Head,
            page: PAGE,
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

    /// One round: the page after the lowest checkpoint, applied to every projection (each
    /// skips what it already has). Answers how many events the page held (0: caught up).
    ///
    /// # Errors
    /// [`WorkerError`]: the projections that failed keep their checkpoint.
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
        let from = known.iter().copied().min().unwrap_or(0);
        let mut page = match read_page(self.events.as_ref(), Position(from), self.page).await {
            Ok(page) => page,
            Err(e) => {
                self.checkpoints = Some(known);
                return Err(e.into());
            }
        };
        let until = self.until;
        if let Some(cut) = page.iter().position(|e| !until.admits(e)) {
            page.truncate(cut);
        }
        let mut next = known.clone();
        let mut failure = None;
        for (i, p) in self.projections.iter().enumerate() {
            match apply(&self.read, self.events.as_ref(), p.as_ref(), &page).await {
                Ok(applied) => next[i] = applied.checkpoint,
                Err(e) => failure = Some(e),
            }
        }
        self.checkpoints = Some(next);
        match failure {
            Some(e) => Err(e),
            None => Ok(page.len()),
        }
    }

    /// Rounds until a round finds nothing more (the head, or the `until` limit).
    ///
    /// # Errors
    /// The first round's failure.
    pub async fn catch_up(&mut self) -> Result<u64, WorkerError> {
        let mut total = 0u64;
        loop {
            let n = self.round().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
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
