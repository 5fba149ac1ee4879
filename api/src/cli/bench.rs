//! `billing bench append`: append throughput of the configured store (`bench clock` is in
//! `bench_clock.rs`).
//!
//! `--concurrency` tasks each append one ~300-byte event per request to a stream of its own
//! (distinct streams, `no_stream`), as fast as the store answers, for `--seconds`. Prints one
//! JSON line: events/s, latency percentiles, and the mean group-commit batch size.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Subcommand;
use ledger::event::{AppendRequest, ExpectedVersion, NewEvent, StreamId};
use ledger::ids::{ChargeId, CustomerId};
use ledger::store::EventStore;
use serde_json::json;

use crate::config::StoreConfig;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append synthetic events and print throughput as JSON.
    Append {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Advance a test clock through a year (or two) of monthly renewals; print the time taken.
    Clock {
        #[arg(long, default_value_t = 1)]
        years: u32,
    },
    /// Replay N events (appended first if the log is shorter) into fresh read models; compare
    /// with PostgreSQL's COPY of the log; print JSON.
    Replay {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
    },
}

pub async fn run(config: &StoreConfig, command: BenchCommand) -> Result<ExitCode, String> {
    let (seconds, concurrency) = match command {
        BenchCommand::Append {
            seconds,
            concurrency,
        } => (seconds, concurrency),
        BenchCommand::Clock { years } => return super::bench_clock::run(config, years).await,
        BenchCommand::Replay { events } => {
            return super::bench_replay::run(config, events).await;
        }
    };
    let store = super::open_migrated(config).await?.events();
    let before = store.writer_stats();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds.max(1));
    let tasks: Vec<_> = (0..concurrency.clamp(1, 4096))
        .map(|_| tokio::spawn(append_until(store.clone(), deadline)))
        .collect();
    let mut latencies_us = Vec::new();
    let mut failures = 0u64;
    for t in tasks {
        let (lat, failed) = t.await.map_err(|e| e.to_string())?;
        latencies_us.extend(lat);
        failures += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = store.writer_stats();
    latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
        latencies_us[i] as f64 / 1000.0
    };
    let events = latencies_us.len() as u64;
    let batches = after.batches.saturating_sub(before.batches).max(1);
    let line = json!({
        "backend": store.backend(),
        "seconds": round2(elapsed),
        "concurrency": concurrency,
        "events": events,
        "failures": failures,
        "events_per_sec": round2(events as f64 / elapsed),
        "p50_ms": round2(pct(0.50)),
        "p99_ms": round2(pct(0.99)),
        "batch_mean": round2(after.events.saturating_sub(before.events) as f64 / batches as f64),
    });
    println!("{line}");
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One bench client: returns the latency of each successful append (µs) and the failure count.
async fn append_until(store: Arc<dyn EventStore>, deadline: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut failures = 0;
    while Instant::now() < deadline {
        let charge = ChargeId::new();
        let Ok(stream) = StreamId::of("bench", &charge) else {
            continue;
        };
        let payload = json!({
            "charge_id": charge.to_string(),
            "customer_id": CustomerId::new().to_string(),
            "amount": 1000,
            "currency": "usd",
            "payment_method": "tok_visa",
            "gateway": "sandbox",
            "gateway_key": format!("charge-{charge}"),
            "description": "synthetic append benchmark event, about three hundred bytes",
        });
        let request = AppendRequest::new(
            stream,
            ExpectedVersion::NoStream,
            vec![NewEvent::new("BenchEventAppended", payload, Utc::now())],
        );
        let t = Instant::now();
        match store.append(request).await {
            Ok(_) => latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "bench append failed");
            }
        }
    }
    (latencies, failures)
}
