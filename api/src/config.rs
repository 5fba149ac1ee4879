//! Configuration, from flags or the environment (see `env.example`).

use std::path::PathBuf;

use clap::Args;
use ledger::store::{AnyStore, StoreError};

/// Where the book is kept; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// PostgreSQL URL; when unset, the embedded SQLite store under BILLING_DATA_DIR is used.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded store.
    #[arg(
        long,
        env = "BILLING_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// NATS server (JetStream fan-out; not used yet by this build).
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
}

impl StoreConfig {
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            database_url: None,
            data_dir,
            nats_url: None,
        }
    }

    /// Opens the configured store (does not migrate).
    pub async fn open(&self) -> Result<AnyStore, StoreError> {
        let url = self.database_url.as_deref().filter(|u| !u.is_empty());
        AnyStore::open(url, &self.data_dir).await
    }

    /// "postgres" or "sqlite (<dir>)", for logs.
    pub fn describe(&self) -> String {
        match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(_) => "postgres".to_string(),
            None => format!("sqlite ({})", self.data_dir.display()),
        }
    }
}
