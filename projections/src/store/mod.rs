//! Where read models live: tables `<prefix><projection>` and `<prefix>checkpoints` (and the
//! write side's `<prefix>cursors`, see `cursors`) in the same
//! database as the log (PostgreSQL, or the embedded SQLite file). A batch's transaction is in
//! `tx`; checkpoints moved over events that change no rows, several at once, in `advance`.
//!
//! The live tables have the prefix `rm_`; `billing replay` builds into `rmnext_` and swaps
//! tables in one transaction ([`ReadStore::swap_in`]). Table names are made here from the
//! prefix and the projections' own names (constants of this crate), never from input.

mod advance;
mod cursors;
mod ddl;
mod query;
mod tx;

use ledger::store::AnyStore;
use sqlx::{PgPool, SqlitePool};

pub use ddl::Indexes;
pub use query::{ListFilter, Page, RevenueLine, TrialBalanceLine};
pub use tx::ReadTx;

/// Prefix of the tables the service reads.
pub const LIVE: &str = "rm_";
/// Prefix of the tables a replay builds.
pub const NEXT: &str = "rmnext_";

#[derive(Debug, thiserror::Error)]
pub enum ReadStoreError {
    #[error("read-model database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("read-model document {0} is not valid JSON")]
    Corrupt(String),
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The read-model tables with one prefix, on either backend.
#[derive(Clone)]
pub struct ReadStore {
    pool: Pool,
    prefix: &'static str,
}

impl ReadStore {
    /// The live read models in `store`'s database.
    #[must_use]
    pub fn live(store: &AnyStore) -> ReadStore {
        let pool = match store {
            AnyStore::Postgres(s) => Pool::Postgres(s.pool().clone()),
            AnyStore::Sqlite(s) => Pool::Sqlite(s.pool().clone()),
        };
        ReadStore { pool, prefix: LIVE }
    }

    /// The same database, tables with `prefix` (`LIVE` or `NEXT`).
    #[must_use]
    pub fn with_prefix(&self, prefix: &'static str) -> ReadStore {
        ReadStore {
            pool: self.pool.clone(),
            prefix,
        }
    }

    /// Whether several transactions can write at once (PostgreSQL), or one at a time (SQLite).
    #[must_use]
    pub fn concurrent_writes(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// The most connections its pool opens.
    #[must_use]
    pub fn max_connections(&self) -> u32 {
        match &self.pool {
            Pool::Postgres(pool) => pool.options().get_max_connections(),
            Pool::Sqlite(pool) => pool.options().get_max_connections(),
        }
    }

    #[must_use]
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    pub(crate) fn table(&self, projection: &str) -> String {
        format!("{}{projection}", self.prefix)
    }

    /// The journal lines of a [`Table::Journal`](crate::projection::Table) projection.
    pub(crate) fn lines(&self, projection: &str) -> String {
        format!("{}{projection}_lines", self.prefix)
    }

    pub(crate) fn checkpoints(&self) -> String {
        format!("{}checkpoints", self.prefix)
    }

    /// `template` with `{t}` = the projection's table, `{l}` = its journal lines, `{c}` = the
    /// checkpoint table, and the
    /// placeholders of the backend (`$1` for PostgreSQL, `?1` for SQLite).
    pub(crate) fn sql(&self, template: &str, projection: &str) -> sqlx::AssertSqlSafe<String> {
        let s = template
            .replace("{l}", &self.lines(projection))
            .replace("{t}", &self.table(projection))
            .replace("{c}", &self.checkpoints());
        sqlx::AssertSqlSafe(match self.pool {
            Pool::Postgres(_) => s.replace("{k}", " COLLATE \"C\""),
            Pool::Sqlite(_) => s.replace("{k}", "").replace('$', "?"),
        })
    }
}
