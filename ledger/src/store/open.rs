//! Choosing a backend from configuration.

use std::path::Path;
use std::sync::Arc;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{EventStore, StoreError};
use crate::access::KeyStore;
use crate::vault::DataKeyStore;

/// An opened store of either kind, seen through both traits.
#[derive(Clone)]
pub enum AnyStore {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

impl AnyStore {
    /// PostgreSQL when `database_url` is given, else the embedded SQLite file in `data_dir`.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<AnyStore, StoreError> {
        match database_url {
            Some(url) => Ok(AnyStore::Postgres(PgStore::connect(url, 32).await?)),
            None => Ok(AnyStore::Sqlite(SqliteStore::open(data_dir).await?)),
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            AnyStore::Postgres(s) => s.migrate().await,
            AnyStore::Sqlite(s) => s.migrate().await,
        }
    }

    pub fn events(&self) -> Arc<dyn EventStore> {
        match self {
            AnyStore::Postgres(s) => Arc::new(s.clone()),
            AnyStore::Sqlite(s) => Arc::new(s.clone()),
        }
    }

    pub fn keys(&self) -> Arc<dyn KeyStore> {
        match self {
            AnyStore::Postgres(s) => Arc::new(s.clone()),
            AnyStore::Sqlite(s) => Arc::new(s.clone()),
        }
    }

    pub fn data_keys(&self) -> Arc<dyn DataKeyStore> {
        match self {
            AnyStore::Postgres(s) => Arc::new(s.clone()),
            AnyStore::Sqlite(s) => Arc::new(s.clone()),
        }
    }
}
