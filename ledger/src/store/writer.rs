//! Group commit: one writer task per process.
//!
//! Callers put their requests on a bounded queue and wait for their own answers. The writer takes
//! whatever is queued (up to `batch_max_requests` / `batch_max_events`), commits it in one
//! transaction through the backend, and answers each request. Throughput comes from batching, not
//! from many transactions racing for the ledger head row.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::plan::{Prepared, Row, Written, prepare, recorded as recorded_events, units};
use super::tail::{TAIL_CAPACITY, TAIL_MAX_BYTES, Tail};
use super::{AppendError, StoreError};
use crate::event::{AppendRequest, Committed};

/// Bounds of the writer; every queue and batch has one.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Jobs (one `append_many` call each) that may wait in the queue.
    pub queue_max_jobs: usize,
    /// Requests committed in one transaction at most.
    pub batch_max_requests: usize,
    /// Events committed in one transaction at most (a larger single request still goes alone).
    pub batch_max_events: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            queue_max_jobs: 8_192,
            batch_max_requests: 1_024,
            batch_max_events: 4_096,
        }
    }
}

/// Counters since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    pub batches: u64,
    pub requests: u64,
    pub events: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    requests: AtomicU64,
    events: AtomicU64,
}

type Answers = Vec<Result<Committed, AppendError>>;

/// What a backend does with one batch, inside one transaction.
#[async_trait]
pub(crate) trait BatchSink: Send + Sync + 'static {
    async fn write_batch(&self, requests: &[Prepared]) -> Result<Written, StoreError>;
}

struct Job {
    requests: Vec<Prepared>,
    reply: oneshot::Sender<Answers>,
}

/// Handle to the writer task; dropping every handle stops it after the queue drains.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    /// What this writer committed last, for the process's readers.
    tail: Arc<Tail>,
}

impl Writer {
    pub fn spawn(sink: Arc<dyn BatchSink>, config: WriterConfig) -> Writer {
        let (queue, rx) = mpsc::channel(config.queue_max_jobs.max(1));
        let counters = Arc::new(Counters::default());
        let tail = Arc::new(Tail::new(TAIL_CAPACITY, TAIL_MAX_BYTES));
        tokio::spawn(run(sink, config, rx, counters.clone(), tail.clone()));
        Writer {
            queue,
            counters,
            tail,
        }
    }

    /// The events this writer committed last.
    pub fn tail(&self) -> &Tail {
        &self.tail
    }

    /// The writer on a thread of its own, in a single-threaded runtime on which `make_sink`
    /// opens its connections: a batch's answer wakes the writer at once, instead of queueing
    /// behind the request tasks of the process's runtime (under load that wait was a good part
    /// of every batch). The thread ends when every handle is dropped. Without a thread or a
    /// runtime (the system has none left) appends fail (`Closed`), logged once here.
    pub fn spawn_on_thread<F>(make_sink: F, config: WriterConfig) -> Writer
    where
        F: FnOnce() -> Arc<dyn BatchSink> + Send + 'static,
    {
        let (queue, rx) = mpsc::channel(config.queue_max_jobs.max(1));
        let counters = Arc::new(Counters::default());
        let theirs = counters.clone();
        let tail = Arc::new(Tail::new(TAIL_CAPACITY, TAIL_MAX_BYTES));
        let filled = tail.clone();
        // The runtime is built and dropped on the thread (dropping one in async code panics).
        let started =
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        // The sink is made inside the runtime: its pool spawns tasks there.
                        Ok(rt) => rt.block_on(async move {
                            run(make_sink(), config, rx, theirs, filled).await
                        }),
                        Err(e) => {
                            tracing::error!(error = %e, "no runtime for the writer: appends fail")
                        }
                    }
                });
        if let Err(e) = started {
            tracing::error!(error = %e, "no thread for the writer: appends fail");
        }
        Writer {
            queue,
            counters,
            tail,
        }
    }

    /// Checks and encodes the requests on the caller's task (outside the writer's critical
    /// section), queues the valid ones, and answers every request in order.
    pub async fn submit(&self, requests: Vec<AppendRequest>) -> Answers {
        let mut answers: Vec<Option<Result<Committed, AppendError>>> =
            Vec::with_capacity(requests.len());
        let mut queued = Vec::new();
        for checked in requests.into_iter().map(prepare) {
            match checked {
                Ok(p) => {
                    queued.push(p);
                    answers.push(None);
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        let mut written = if queued.is_empty() {
            Vec::new()
        } else {
            self.enqueue(queued).await
        }
        .into_iter();
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| written.next().unwrap_or(Err(StoreError::Closed.into()))))
            .collect()
    }

    /// Checks the requests, then records them in one transaction, all of them or none: the
    /// first refusal answers for all.
    pub async fn submit_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Committed>, AppendError> {
        let mut queued = requests
            .into_iter()
            .map(prepare)
            .collect::<Result<Vec<_>, _>>()?;
        let Some((_, joined)) = queued.split_last_mut() else {
            return Ok(Vec::new());
        };
        for p in joined {
            p.with_next = true;
        }
        self.enqueue(queued).await.into_iter().collect()
    }

    async fn enqueue(&self, requests: Vec<Prepared>) -> Answers {
        let n = requests.len();
        let closed = || {
            (0..n)
                .map(|_| Err(AppendError::Store(StoreError::Closed)))
                .collect()
        };
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Job { requests, reply }).await.is_err() {
            return closed();
        }
        answer.await.unwrap_or_else(|_| closed())
    }

    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            requests: self.counters.requests.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
        }
    }
}

async fn run(
    sink: Arc<dyn BatchSink>,
    config: WriterConfig,
    mut rx: mpsc::Receiver<Job>,
    counters: Arc<Counters>,
    tail: Arc<Tail>,
) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut jobs = vec![first];
        let mut n_requests = jobs[0].requests.len();
        let mut n_events: usize = jobs[0]
            .requests
            .iter()
            .map(|r| r.request.events.len())
            .sum();
        while n_requests < config.batch_max_requests && n_events < config.batch_max_events {
            let Ok(job) = rx.try_recv() else { break };
            let job_events: usize = job.requests.iter().map(|r| r.request.events.len()).sum();
            if n_requests + job.requests.len() > config.batch_max_requests
                || n_events + job_events > config.batch_max_events
            {
                carry = Some(job);
                break;
            }
            n_requests += job.requests.len();
            n_events += job_events;
            jobs.push(job);
        }

        let counts: Vec<usize> = jobs.iter().map(|j| j.requests.len()).collect();
        let mut requests: Vec<Prepared> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.requests))
            .collect();
        let (answers, rows) = commit(sink.as_ref(), &requests).await;
        let first: Vec<_> = answers
            .iter()
            .map(|a| a.as_ref().ok().map(|c| c.first_position))
            .collect();

        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .requests
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        let recorded: u64 = requests
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_ok())
            .map(|(r, _)| r.request.events.len() as u64)
            .sum();
        counters.events.fetch_add(recorded, Ordering::Relaxed);

        let mut answers = answers.into_iter();
        for (job, n) in jobs.into_iter().zip(counts) {
            let mine: Answers = answers.by_ref().take(n).collect();
            let _ = job.reply.send(mine);
        }
        // After the answers: the callers need not wait for it.
        if !rows.is_empty() {
            tail.push(recorded_events(&mut requests, &first, rows));
        }
    }
}

/// Commits a batch; if the database rejects the batch as a whole (one request's data refused by
/// a constraint, say), each request (or atomic unit) is retried alone so one bad request cannot
/// fail the others.
/// A broken connection is not retried: its outcome is unknown, the callers are told so.
/// Answers the outcomes and the rows committed, in position order.
async fn commit(sink: &dyn BatchSink, requests: &[Prepared]) -> (Answers, Vec<Row>) {
    match sink.write_batch(requests).await {
        Ok(written) => (written.outcomes, written.rows),
        Err(StoreError::Rejected(_)) if units(requests).nth(1).is_some() => {
            let mut answers = Vec::with_capacity(requests.len());
            let mut rows = Vec::new();
            for unit in units(requests) {
                match sink.write_batch(unit).await {
                    Ok(w) if w.outcomes.len() == unit.len() => {
                        answers.extend(w.outcomes);
                        rows.extend(w.rows);
                    }
                    Ok(_) => {
                        // Not what was asked: the rows no longer match the requests, so
                        // `recorded` passes none of this batch on to the tail.
                        rows.clear();
                        answers.extend(unit.iter().map(|_| Err(StoreError::Closed.into())));
                    }
                    Err(e) => answers.extend(unit.iter().map(|_| Err(e.clone().into()))),
                }
            }
            (answers, rows)
        }
        Err(e) => (
            requests.iter().map(|_| Err(e.clone().into())).collect(),
            Vec::new(),
        ),
    }
}
