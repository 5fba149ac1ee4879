//! What `billing serve` runs beside HTTP (and `billing worker` without it): the recovery of
//! pending payments, the scheduler, the relay to NATS JetStream and the projection workers.

use std::time::Duration;

use commands::billing::Scheduler;
use commands::charge::recovery::RecoveryScan;
use ledger::event::Position;
use ledger::store::AnyStore;
use projections::projection::Projection;
use projections::relay::{self, NatsStatus, RelayConfig};
use projections::store::ReadStore;
use projections::worker::local::LocalFeed;
use projections::worker::nats::NatsWorker;

use crate::state::AppState;

/// Completes charges and refunds left pending (crash, timeout, store outage) in the background:
/// every `interval` (`BILLING_RECOVERY_INTERVAL_S`, default 30 s), those pending for longer than
/// `grace` (`BILLING_RECOVERY_GRACE_S`, default 60 s; a younger one may still be in the hands of
/// the request that made it).
/// Reacts to webhook deliveries recorded but not reacted to (a process that died in between, a
/// store failure while reacting): a pass over the log every `interval`.
pub fn spawn_reactor(state: AppState, interval: Duration) {
    tokio::spawn(async move {
        let mut saved = load_cursor(&state.read, REACTOR_CURSOR).await;
        state.reactor.resume_after(Position(saved)).await;
        let mut every = tokio::time::interval(interval);
        loop {
            every.tick().await;
            if let Err(e) = state.reactor.catch_up().await {
                tracing::warn!(error = %e, "webhook reactor pass failed; will retry");
                continue;
            }
            let settled = state.reactor.settled_position().await;
            save_cursor(&state.read, REACTOR_CURSOR, settled, &mut saved).await;
        }
    });
}

/// The webhook reactor's cursor in the read store.
pub const REACTOR_CURSOR: &str = "webhook_reactor";
/// The charge recovery scan's cursor in the read store.
pub const RECOVERY_CURSOR: &str = "charge_recovery";
/// How often the recovery scan reads what was appended since (it completes what is pending only
/// every recovery interval).
const RECOVERY_FOLLOW: Duration = Duration::from_millis(250);

/// Where `name` stopped in an earlier process (the start of the log when unreadable).
async fn load_cursor(read: &ReadStore, name: &str) -> i64 {
    read.cursor(name).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, cursor = name, "cursor unreadable; reading the log from the start");
        0
    })
}

/// Saves `name` at `settled` when it moved past `saved`.
async fn save_cursor(read: &ReadStore, name: &str, settled: Position, saved: &mut i64) {
    if settled.0 > *saved {
        match read.save_cursor(name, settled.0).await {
            Ok(()) => *saved = settled.0,
            Err(e) => tracing::warn!(error = %e, cursor = name, "cursor not saved"),
        }
    }
}

pub fn spawn_recovery(state: AppState, interval: Duration, grace: chrono::Duration) {
    tokio::spawn(async move {
        let mut scan = RecoveryScan::new();
        let mut saved = load_cursor(&state.read, RECOVERY_CURSOR).await;
        scan.resume_after(Position(saved));
        // The scan follows the log between runs, a little at a time: what this process just
        // appended is still in the store's tail then, not read back from the database.
        let mut every = tokio::time::interval(interval.min(RECOVERY_FOLLOW));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due = tokio::time::Instant::now();
        loop {
            let at = every.tick().await;
            if at < due {
                // A failure here shows again at the run (warned there, once per interval).
                if let Err(e) = scan.catch_up(state.store.as_ref()).await {
                    tracing::debug!(error = %e, "recovery scan could not follow the log");
                }
                continue;
            }
            due = at + interval;
            let older_than = state.clock.now() - grace;
            match state
                .charges
                .recover(state.store.as_ref(), &mut scan, older_than)
                .await
            {
                Ok(r) if r.charges_completed + r.refunds_completed > 0 => {
                    tracing::info!(
                        charges = r.charges_completed,
                        refunds = r.refunds_completed,
                        still_pending = r.still_pending,
                        "recovered pending payments"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "recovery run failed; will retry");
                    continue;
                }
            }
            save_cursor(
                &state.read,
                RECOVERY_CURSOR,
                scan.settled_position(),
                &mut saved,
            )
            .await;
        }
    });
}

/// Runs renewals, trial ends and payment retries as they fall due, in the one process that
/// holds the scheduler role (a PostgreSQL advisory lock; the embedded store has one process).
pub fn spawn_scheduler(state: AppState, store: AnyStore, interval: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        let mut leadership = None;
        let mut scheduler = Scheduler::new(state.billing.clone());
        loop {
            every.tick().await;
            if let Some(held) = leadership.as_mut()
                && !ledger::store::Leadership::holds(held).await
            {
                tracing::warn!("scheduler role lost; trying to take it again");
                leadership = None;
            }
            if leadership.is_none() {
                match store.try_lead("scheduler").await {
                    Ok(Some(l)) => {
                        tracing::info!("this process runs the scheduler");
                        leadership = Some(l);
                        // Start from a fresh memory: another process may have run jobs meanwhile.
                        scheduler = Scheduler::new(state.billing.clone());
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take the scheduler role; will retry");
                        continue;
                    }
                }
            }
            match scheduler.tick(state.clock.now()).await {
                Ok(t) if t.jobs_run + t.jobs_failed > 0 => {
                    tracing::info!(run = t.jobs_run, failed = t.jobs_failed, "scheduled jobs");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler tick failed; will retry"),
            }
        }
    });
}

/// Publishes the log to NATS JetStream (`projections::relay`) in the one process that holds the
/// relay role. NATS being down never stops the service: the connection is retried with backoff in
/// the background (and logged), and `status` says whether it is up, for `/ready`.
pub fn spawn_relay(store: AnyStore, nats_url: String, status: NatsStatus, config: RelayConfig) {
    tokio::spawn(async move {
        let client = relay::connect(&nats_url).await;
        status.set(client.clone());
        relay::run_as_leader(store, client, config).await;
    });
}

/// Creates the read-model tables if missing (so the read API answers, even without workers).
pub async fn ensure_read_models(store: &AnyStore) -> Result<ReadStore, String> {
    let read = ReadStore::live(store);
    let all = projections::all();
    let refs: Vec<&dyn Projection> = all.iter().map(|p| p.as_ref()).collect();
    read.ensure(&refs)
        .await
        .map_err(|e| format!("cannot create the read-model tables: {e}"))?;
    Ok(read)
}

/// Runs the projection workers: one JetStream durable pull consumer per projection when NATS is
/// configured (the relay feeds the stream), else the in-process feed from the store.
pub fn spawn_workers(store: &AnyStore, read: ReadStore, nats: Option<(String, RelayConfig)>) {
    let events = store.events();
    let all = projections::all();
    match nats {
        None => {
            tokio::spawn(async move {
                // The feed runs for ever; should it panic, it starts again from the checkpoints.
                loop {
                    let feed = LocalFeed::new(read.clone(), events.clone(), all.clone());
                    if let Err(e) = tokio::spawn(feed.run()).await {
                        tracing::error!(error = %e, "projection feed stopped; starting it again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
        }
        Some((url, config)) => {
            tokio::spawn(async move {
                let client = relay::connect(&url).await;
                for p in all {
                    let (client, read, events) = (client.clone(), read.clone(), events.clone());
                    let stream = config.stream.clone();
                    tokio::spawn(async move {
                        // The stream exists once the relay has created it.
                        loop {
                            match NatsWorker::bind(
                                client.clone(),
                                &stream,
                                read.clone(),
                                events.clone(),
                                p.clone(),
                            )
                            .await
                            {
                                // Runs for ever; should it panic, it is bound and started again.
                                Ok(worker) => {
                                    if let Err(e) = tokio::spawn(worker.run()).await {
                                        tracing::error!(projection = p.name(), error = %e, "projection worker stopped; starting it again");
                                        tokio::time::sleep(Duration::from_secs(1)).await;
                                    }
                                }
                                Err(e) => {
                                    tracing::info!(projection = p.name(), error = %e, "projection worker waits for JetStream");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        }
                    });
                }
            });
        }
    }
}
