//! `billing bench replay --events N`: the rate of a full replay of N events (charges, their
//! outcomes and some refunds, appended by the real store first when the log is shorter) into
//! fresh read-model tables, against the rate of PostgreSQL's own
//! `COPY (SELECT * FROM events ORDER BY position) TO STDOUT` (the fastest of three), and the
//! process's memory at 10 % and at 100 % of the replay. The replay is `billing replay`'s: the
//! pipelined catch-up into fresh tables, their secondary indexes built at the end. Prints one
//! JSON line. PostgreSQL only (`DATABASE_URL`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use commands::charge::refund::{RefundEvent, RefundRequested, RefundSucceeded};
use commands::charge::{ChargeEvent, ChargeRequested, ChargeSucceeded};
use commands::stored::to_new_event;
use ledger::event::{AppendRequest, ExpectedVersion, Metadata, StreamId};
use ledger::ids::{ChargeId, CustomerId, RefundId};
use ledger::money::Currency;
use ledger::store::{AnyStore, EventStore};
use projections::projection::Projection;
use projections::store::{Indexes, NEXT};
use projections::worker::local::LocalFeed;
use serde_json::json;

use crate::config::StoreConfig;

/// Times the COPY is run (the fastest counts).
const COPY_RUNS: usize = 3;

/// Concurrent appenders while the log is filled.
const FILLERS: usize = 128;

pub async fn run(config: &StoreConfig, events: u64) -> Result<ExitCode, String> {
    let store = super::open_migrated(config).await?;
    let AnyStore::Postgres(pg) = &store else {
        return Err("bench replay compares with PostgreSQL's COPY: set DATABASE_URL".into());
    };
    let _guard = store
        .try_lead("replay")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("a replay is running on this database")?;
    let log = store.events();
    let filled = fill(log.clone(), events).await?;
    let head = log.head().await.map_err(|e| e.to_string())?.position.0;
    eprintln!("log: {head} events ({filled} appended now)");

    // PostgreSQL's own rate of reading the log in order: the fastest of three (it varies by
    // ±10 % from run to run here; the fastest is the stricter yardstick).
    let mut copy_secs = f64::INFINITY;
    let mut bytes = 0;
    for _ in 0..COPY_RUNS {
        let started = Instant::now();
        bytes = pg.copy_log_out().await.map_err(|e| e.to_string())?;
        copy_secs = copy_secs.min(started.elapsed().as_secs_f64());
    }
    let copy_rate = head as f64 / copy_secs;

    // A full replay of every projection into fresh tables (not swapped in).
    let all = projections::all();
    let refs: Vec<&dyn Projection> = all.iter().map(|p| p.as_ref()).collect();
    let next = super::background::ensure_read_models(&store)
        .await?
        .with_prefix(NEXT);
    next.drop_tables(&refs).await.map_err(|e| e.to_string())?;
    next.ensure_with(&refs, Indexes::Later)
        .await
        .map_err(|e| e.to_string())?;
    let mut feed = LocalFeed::new(next.clone(), log.clone(), all.clone());
    let started = Instant::now();
    let rss_tenth = std::sync::OnceLock::new();
    let done = feed
        .catch_up_with(&|position| {
            if position >= head / 10 {
                rss_tenth.get_or_init(rss_kib);
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    let rss_tenth = rss_tenth.get().copied().flatten();
    next.build_indexes(&refs).await.map_err(|e| e.to_string())?;
    let replay_secs = started.elapsed().as_secs_f64();
    let rss_end = rss_kib();
    let replay_rate = done as f64 / replay_secs;
    next.drop_tables(&refs).await.map_err(|e| e.to_string())?;
    let line = json!({
        "events": head,
        "copy_seconds": round2(copy_secs),
        "copy_mib": round2(bytes as f64 / 1_048_576.0),
        "copy_rows_per_sec": round2(copy_rate),
        "replay_seconds": round2(replay_secs),
        "replay_events_per_sec": round2(replay_rate),
        "replay_vs_copy": (replay_rate / copy_rate * 1000.0).round() / 1000.0,
        "rss_kib_at_10pct": rss_tenth,
        "rss_kib_at_end": rss_end,
        "rss_end_vs_10pct": match (rss_tenth, rss_end) {
            (Some(a), Some(b)) if a > 0 => Some((b as f64 / a as f64 * 1000.0).round() / 1000.0),
            _ => None,
        },
    });
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The resident set of this process (Linux), in KiB.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Appends charges (requested + succeeded; every tenth refunded in part) until the log holds
/// at least `events`. Answers how many were appended.
async fn fill(log: Arc<dyn EventStore>, events: u64) -> Result<u64, String> {
    let head = log.head().await.map_err(|e| e.to_string())?.position.0;
    let missing = events.saturating_sub(u64::try_from(head).unwrap_or(0));
    if missing == 0 {
        return Ok(0);
    }
    let per_task = missing / FILLERS as u64 + 1;
    let tasks: Vec<_> = (0..FILLERS)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut appended = 0u64;
                let mut i = 0u64;
                while appended < per_task {
                    appended += one_charge(log.as_ref(), i % 10 == t as u64 % 10).await?;
                    i += 1;
                }
                Ok::<u64, String>(appended)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

async fn one_charge(log: &dyn EventStore, refunded: bool) -> Result<u64, String> {
    let id = ChargeId::new();
    let mut events = vec![
        ChargeEvent::Requested(ChargeRequested {
            charge_id: id,
            amount: 2_999,
            currency: Currency::parse("usd").map_err(|e| e.to_string())?,
            customer_id: Some(CustomerId::new()),
            payment_method: "tok_visa".into(),
            description: Some("replay benchmark".into()),
            gateway: "sandbox".into(),
            gateway_key: format!("charge-{id}"),
            gateway_customer: None,
            off_session: false,
            capture_later: false,
            request_fingerprint: None,
        }),
        ChargeEvent::Succeeded(ChargeSucceeded {
            charge_id: id,
            gateway_charge_id: format!("sb_{id}"),
        }),
    ];
    if refunded {
        let refund = RefundId::new();
        events.push(ChargeEvent::Refund(RefundEvent::Requested(
            RefundRequested {
                charge_id: id,
                refund_id: refund,
                amount: 999,
                reason: None,
                gateway_key: format!("refund-{refund}"),
                request_fingerprint: None,
            },
        )));
        events.push(ChargeEvent::Refund(RefundEvent::Succeeded(
            RefundSucceeded {
                charge_id: id,
                refund_id: refund,
                gateway_refund_id: format!("sbr_{refund}"),
            },
        )));
    }
    let stream = StreamId::of("charge", &id).map_err(|e| e.to_string())?;
    let metadata = Metadata::default();
    let new = events
        .iter()
        .map(|e| to_new_event(e, Utc::now(), &metadata))
        .collect::<Vec<_>>();
    let n = new.len() as u64;
    log.append(AppendRequest::new(stream, ExpectedVersion::NoStream, new))
        .await
        .map_err(|e| e.to_string())?;
    Ok(n)
}
