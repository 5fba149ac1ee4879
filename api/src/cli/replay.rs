//! `billing replay` (rebuild read models from the log, then swap them in) and `billing books`
//! (the books at a past moment, from the log alone).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Args;
use ledger::money::{Currency, Money};
use projections::books::{Books, books};
use projections::projection::Projection;
use projections::store::{Indexes, NEXT, ReadStore};
use projections::worker::local::{LocalFeed, Until};

use crate::config::StoreConfig;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Rebuild only this projection (repeatable; default: all). Names: customers, plans,
    /// tax_rates, subscriptions, invoices, charges, journal.
    #[arg(long = "projection", value_name = "NAME")]
    pub projections: Vec<String>,
    /// Rebuild as the log stood at this moment (RFC 3339: the events recorded at or before
    /// it). The result stays in the `rmnext_*` tables for inspection; nothing is swapped in.
    #[arg(long, conflicts_with = "to_position")]
    pub as_of: Option<String>,
    /// Rebuild up to this log position (inclusive); like `--as-of`, not swapped in.
    #[arg(long)]
    pub to_position: Option<i64>,
}

#[derive(Debug, Args)]
pub struct BooksArgs {
    /// The moment (RFC 3339): the books hold the events recorded at or before it.
    #[arg(long)]
    pub as_of: String,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

fn moment(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time like 2026-03-31T23:59:59Z: {e}"))
}

fn selected(names: &[String]) -> Result<Vec<Arc<dyn Projection>>, String> {
    let all = projections::all();
    if names.is_empty() {
        return Ok(all);
    }
    names
        .iter()
        .map(|n| {
            all.iter().find(|p| p.name() == n).cloned().ok_or_else(|| {
                let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
                format!("no projection {n:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}

pub async fn replay(config: &StoreConfig, args: ReplayArgs) -> Result<ExitCode, String> {
    let chosen = selected(&args.projections)?;
    let until = match (&args.as_of, args.to_position) {
        (Some(t), _) => Until::RecordedAt(moment(t)?),
        (None, Some(p)) if p >= 0 => Until::Position(p),
        (None, Some(p)) => return Err(format!("--to-position {p}: must be 0 or more")),
        (None, None) => Until::Head,
    };
    let store = super::open_migrated(config).await?;
    let _guard = store
        .try_lead("replay")
        .await
        .map_err(|e| e.to_string())?
        .ok_or("another replay is running on this database")?;
    let live = super::background::ensure_read_models(&store).await?;
    let next: ReadStore = live.with_prefix(NEXT);
    let refs: Vec<&dyn Projection> = chosen.iter().map(|p| p.as_ref()).collect();
    let db = |e: projections::store::ReadStoreError| e.to_string();
    next.drop_tables(&refs).await.map_err(db)?;
    next.ensure_with(&refs, Indexes::Later).await.map_err(db)?;
    let events = store.events();
    let head = events.head().await.map_err(|e| e.to_string())?.position.0;
    let mut feed = LocalFeed::new(next.clone(), events, chosen.clone()).until(until);
    let started = Instant::now();
    let shown = std::sync::Mutex::new(Instant::now());
    let report = |position: i64| {
        if let Ok(mut shown) = shown.lock()
            && (position >= head || shown.elapsed() >= Duration::from_millis(250))
        {
            *shown = Instant::now();
            progress(position, head, started.elapsed());
        }
    };
    let total = feed
        .catch_up_with(&report)
        .await
        .map_err(|e| e.to_string())?;
    progress(feed.position(), head, started.elapsed());
    eprintln!();
    next.build_indexes(&refs).await.map_err(db)?;
    let secs = started.elapsed().as_secs_f64();
    let names: Vec<&str> = chosen.iter().map(|p| p.name()).collect();
    let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
    println!(
        "replayed {} events (to position {}) into {} in {secs:.2} s: {rate:.0} events/s",
        total,
        feed.position(),
        names.join(", ")
    );
    if until == Until::Head {
        next.swap_in(&live, &refs).await.map_err(db)?;
        println!("swapped in: the live read models are the rebuilt ones");
    } else {
        println!(
            "kept in the {NEXT}* tables (a point-in-time rebuild is not swapped in); \
             `billing books --as-of` prints the books of a moment"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn progress(position: i64, head: i64, elapsed: Duration) {
    let width = 30usize;
    let done = if head > 0 {
        usize::try_from(position.min(head) * width as i64 / head).unwrap_or(width)
    } else {
        width
    };
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        position as f64 / secs
    } else {
        0.0
    };
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r[{}{}] {position}/{head} events, {rate:.0} events/s",
        "#".repeat(done),
        "-".repeat(width - done)
    );
    let _ = err.flush();
}

fn amount(minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(c) => Money::new(minor, c).to_string(),
        Err(_) => format!("{minor} {currency}"),
    }
}

pub async fn books_command(config: &StoreConfig, args: BooksArgs) -> Result<ExitCode, String> {
    let at = moment(&args.as_of)?;
    let store = super::open_migrated(config).await?;
    let events = store.events();
    let b = books(events.as_ref(), Until::RecordedAt(at))
        .await
        .map_err(|e| e.to_string())?;
    if args.json {
        println!("{}", books_json(&b, at));
    } else {
        print_books(&b, at);
    }
    let balanced = b.imbalance().values().all(|v| *v == 0);
    Ok(if balanced {
        ExitCode::SUCCESS
    } else {
        eprintln!("billing: the books do not balance: {:?}", b.imbalance());
        ExitCode::FAILURE
    })
}

fn print_books(b: &Books, at: DateTime<Utc>) {
    println!(
        "Books as of {} (log position {}, {} events)",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        b.position,
        b.events
    );
    for (currency, accounts) in &b.accounts {
        println!("\n{}", currency.to_uppercase());
        println!(
            "  {:<44} {:>16} {:>16} {:>16}",
            "account", "debit", "credit", "balance"
        );
        for (account, t) in accounts {
            println!(
                "  {:<44} {:>16} {:>16} {:>16}",
                account,
                amount(t.debit, currency),
                amount(t.credit, currency),
                amount(t.balance(), currency)
            );
        }
    }
    if !b.customers.is_empty() {
        println!("\nCustomers");
        println!(
            "  {:<32} {:>14} {:>14} {:>14} {:>14} {:>14}",
            "customer", "invoiced", "paid", "refunded", "outstanding", "balance"
        );
        for ((customer, currency), c) in &b.customers {
            println!(
                "  {:<32} {:>14} {:>14} {:>14} {:>14} {:>14}",
                customer,
                amount(c.invoiced, currency),
                amount(c.paid, currency),
                amount(c.refunded, currency),
                amount(c.outstanding, currency),
                amount(c.balance, currency)
            );
        }
    }
}

fn books_json(b: &Books, at: DateTime<Utc>) -> serde_json::Value {
    let currencies: serde_json::Map<String, serde_json::Value> = b
        .accounts
        .iter()
        .map(|(currency, accounts)| {
            let accounts: serde_json::Map<String, serde_json::Value> = accounts
                .iter()
                .map(|(a, t)| {
                    (
                        a.clone(),
                        serde_json::json!({"debit": t.debit, "credit": t.credit, "balance": t.balance()}),
                    )
                })
                .collect();
            (currency.clone(), serde_json::Value::Object(accounts))
        })
        .collect();
    let customers: Vec<serde_json::Value> = b
        .customers
        .iter()
        .map(|((customer, currency), c)| {
            serde_json::json!({
                "customer": customer, "currency": currency, "invoiced": c.invoiced,
                "paid": c.paid, "refunded": c.refunded, "outstanding": c.outstanding,
                "balance": c.balance,
            })
        })
        .collect();
    serde_json::json!({
        "as_of": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "position": b.position,
        "events": b.events,
        "currencies": currencies,
        "customers": customers,
    })
}
