//! The `billing` command line.

mod audit;
mod background;
mod bench;
mod bench_clock;
mod bench_replay;
mod keys;
mod replay;
pub mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::StoreConfig;

#[derive(Debug, Parser)]
#[command(
    name = "billing",
    version,
    about = "Kanizsa Billing: an event-sourced billing ledger"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(serve::ServeArgs),
    /// Run the relay, the projection workers, the scheduler and recovery, without HTTP.
    Worker,
    /// Rebuild read models from the log into fresh tables and swap them in.
    Replay(replay::ReplayArgs),
    /// Print the books (per currency and per customer) at a past moment, from the log alone.
    Books(replay::BooksArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Check the ledger.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Measure.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("billing: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None => serve::run(&cli.store, serve::ServeArgs::from_env()?).await,
            Some(Command::Serve(args)) => serve::run(&cli.store, args).await,
            Some(Command::Worker) => serve::worker(&cli.store).await,
            Some(Command::Replay(args)) => replay::replay(&cli.store, args).await,
            Some(Command::Books(args)) => replay::books_command(&cli.store, args).await,
            Some(Command::Migrate) => migrate(&cli.store).await,
            Some(Command::Keys(cmd)) => keys::run(&cli.store, cmd).await,
            Some(Command::Audit(cmd)) => audit::run(&cli.store, cmd).await,
            Some(Command::Bench(cmd)) => bench::run(&cli.store, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("billing: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the configured store and applies migrations.
pub async fn open_migrated(config: &StoreConfig) -> Result<ledger::store::AnyStore, String> {
    let store = config.open().await.map_err(|e| {
        format!(
            "cannot open the {} store: {e}{}",
            config.describe(),
            start_hint(config)
        )
    })?;
    store
        .migrate()
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    Ok(store)
}

fn start_hint(config: &StoreConfig) -> &'static str {
    if config.database_url.is_some() {
        "\n  is PostgreSQL running? start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n  or unset DATABASE_URL to use the embedded store"
    } else {
        ""
    }
}

async fn migrate(config: &StoreConfig) -> Result<ExitCode, String> {
    open_migrated(config).await?;
    eprintln!("migrations applied ({})", config.describe());
    Ok(ExitCode::SUCCESS)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
