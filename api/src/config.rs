//! Configuration, from flags or the environment (see `env.example`).

use std::path::PathBuf;

use clap::Args;
use ledger::store::{AnyStore, StoreError};
use ledger::vault::{Key, master_key};

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
    /// 64 hex digits: the master key that wraps each customer's data key. When unset, the key in
    /// `<data dir>/master.key` is used (created on first start).
    #[arg(
        long,
        env = "BILLING_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// NATS server (JetStream fan-out; not used yet by this build).
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
}

impl StoreConfig {
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            database_url: None,
            data_dir,
            master_key: None,
            nats_url: None,
        }
    }

    /// Opens the configured store (does not migrate).
    pub async fn open(&self) -> Result<AnyStore, StoreError> {
        let url = self.database_url.as_deref().filter(|u| !u.is_empty());
        AnyStore::open(url, &self.data_dir).await
    }

    /// The master key: configured, or from the key file in the data directory (created when
    /// missing).
    pub fn master_key(&self) -> Result<Key, String> {
        let configured = self.master_key.as_deref().filter(|k| !k.is_empty());
        let file = self.data_dir.join("master.key");
        if configured.is_none() {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", self.data_dir.display()))?;
        }
        let (key, created) = master_key(configured, &file).map_err(|e| e.to_string())?;
        if created {
            tracing::warn!(
                file = %file.display(),
                "created a master key for personal data; keep it safe (losing it loses every customer's personal data) or set BILLING_MASTER_KEY"
            );
        }
        Ok(key)
    }

    /// "postgres" or "sqlite (<dir>)", for logs.
    pub fn describe(&self) -> String {
        match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(_) => "postgres".to_string(),
            None => format!("sqlite ({})", self.data_dir.display()),
        }
    }
}
