//! Creating the tables, and swapping a rebuilt set in.

use super::{Pool, ReadStore, ReadStoreError};
use crate::projection::{Projection, Table};

const CHECKPOINTS: &str =
    "CREATE TABLE IF NOT EXISTS {c} (projection TEXT PRIMARY KEY, position BIGINT NOT NULL)";
/// `{k}`: byte order for the keys (`COLLATE "C"` on PostgreSQL, SQLite's own default): ids
/// and timestamps are ASCII, and a locale's comparison is most of an index probe's cost.
const DOCS: &str = "CREATE TABLE {t} (id TEXT{k} PRIMARY KEY, customer TEXT{k}, status TEXT, \
     created TEXT{k} NOT NULL, position BIGINT NOT NULL, body TEXT NOT NULL)";
const DOCS_BY_CREATED: &str = "CREATE INDEX {t}_by_created_{g} ON {t} (created, id)";
const DOCS_BY_CUSTOMER: &str = "CREATE INDEX {t}_by_customer_{g} ON {t} (customer, created, id)";
const JOURNAL: &str = "CREATE TABLE {l} (position BIGINT NOT NULL, line INT NOT NULL, \
     at TEXT{k} NOT NULL, entry TEXT NOT NULL, account TEXT NOT NULL, currency TEXT NOT NULL, \
     debit BIGINT NOT NULL, credit BIGINT NOT NULL, customer TEXT, PRIMARY KEY (position, line))";
const JOURNAL_BY_AT: &str = "CREATE INDEX {l}_by_at_{g} ON {l} (at)";
const START: &str =
    "INSERT INTO {c} (projection, position) VALUES ($1, 0) ON CONFLICT (projection) DO NOTHING";

/// The statements that create a projection's tables, and its secondary indexes unless
/// `Indexes::Later`. Index names carry `generation`, because a table swapped in keeps the index
/// names it was built with.
fn create(p: &dyn Projection, generation: &str, indexes: Indexes) -> Vec<String> {
    let mut statements = vec![DOCS];
    if p.table() == Table::Journal {
        statements.push(JOURNAL);
    }
    if indexes == Indexes::Now {
        statements.extend(secondary(p));
    }
    statements
        .iter()
        .map(|s| s.replace("{g}", generation))
        .collect()
}

/// The indexes the read API's lists and ranges use (the primary keys aside).
fn secondary(p: &dyn Projection) -> Vec<&'static str> {
    let mut statements = Vec::new();
    if p.listed() {
        statements.extend([DOCS_BY_CREATED, DOCS_BY_CUSTOMER]);
    }
    if p.table() == Table::Journal {
        statements.push(JOURNAL_BY_AT);
    }
    statements
}

/// When a table's secondary indexes are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indexes {
    /// With the table: live read models, kept up to date row by row.
    Now,
    /// By [`ReadStore::build_indexes`], once the rows are in: a replay, which fills a fresh
    /// table with the whole log (one sort per index instead of an index insert per row).
    Later,
}

fn generation() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

impl ReadStore {
    /// Creates the checkpoint table and each projection's table when missing (checkpoint 0).
    /// Safe to run from several processes at once.
    ///
    /// # Errors
    /// The database's.
    pub async fn ensure(&self, projections: &[&dyn Projection]) -> Result<(), ReadStoreError> {
        self.ensure_with(projections, Indexes::Now).await
    }

    /// [`Self::ensure`], with the secondary indexes of the tables it creates built now or later.
    ///
    /// # Errors
    /// The database's.
    pub async fn ensure_with(
        &self,
        projections: &[&dyn Projection],
        indexes: Indexes,
    ) -> Result<(), ReadStoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // One process at a time creates tables (key: "rm" in ASCII).
                sqlx::query("SELECT pg_advisory_xact_lock(29293)")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(self.sql(CHECKPOINTS, ""))
                    .execute(&mut *tx)
                    .await?;
                for p in projections {
                    let (exists,): (bool,) = sqlx::query_as("SELECT to_regclass($1) IS NOT NULL")
                        .bind(self.table(p.name()))
                        .fetch_one(&mut *tx)
                        .await?;
                    if !exists {
                        for s in create(*p, &generation(), indexes) {
                            sqlx::query(self.sql(&s, p.name()))
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    sqlx::query(self.sql(START, ""))
                        .bind(p.name())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(self.sql(CHECKPOINTS, ""))
                    .execute(&mut *tx)
                    .await?;
                for p in projections {
                    let found: Option<(String,)> = sqlx::query_as(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    )
                    .bind(self.table(p.name()))
                    .fetch_optional(&mut *tx)
                    .await?;
                    if found.is_none() {
                        for s in create(*p, &generation(), indexes) {
                            sqlx::query(self.sql(&s, p.name()))
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                    sqlx::query(self.sql(START, ""))
                        .bind(p.name())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Drops this prefix's tables of `projections` and their checkpoints (a replay's leftovers).
    ///
    /// # Errors
    /// The database's.
    pub async fn drop_tables(&self, projections: &[&dyn Projection]) -> Result<(), ReadStoreError> {
        let mut statements = vec![self.sql(CHECKPOINTS, "").0];
        for p in projections {
            statements.push(self.sql("DROP TABLE IF EXISTS {t}", p.name()).0);
            statements.push(self.sql("DROP TABLE IF EXISTS {l}", p.name()).0);
            statements.push(format!(
                "DELETE FROM {} WHERE projection = '{}'",
                self.checkpoints(),
                p.name()
            ));
        }
        self.execute_all(statements).await
    }

    /// Builds the secondary indexes of tables made with [`Indexes::Later`] (once: a second call
    /// would build them twice). For a replay, after its last batch and before
    /// [`Self::swap_in`].
    ///
    /// # Errors
    /// The database's.
    pub async fn build_indexes(
        &self,
        projections: &[&dyn Projection],
    ) -> Result<(), ReadStoreError> {
        let mut statements = Vec::new();
        for p in projections {
            let generation = generation();
            for s in secondary(*p) {
                statements.push(self.sql(&s.replace("{g}", &generation), p.name()).0);
            }
        }
        self.execute_all(statements).await
    }

    /// How many indexes the tables of `projection` have (primary keys included).
    ///
    /// # Errors
    /// The database's.
    pub async fn index_count(&self, projection: &dyn Projection) -> Result<i64, ReadStoreError> {
        let mut tables = vec![self.table(projection.name())];
        if projection.table() == Table::Journal {
            tables.push(self.lines(projection.name()));
        }
        let (count,): (i64,) = match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query_as("SELECT count(*) FROM pg_indexes WHERE tablename = ANY($1)")
                    .bind(&tables)
                    .fetch_one(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                let list = serde_json::to_string(&tables).unwrap_or_else(|_| "[]".into());
                sqlx::query_as(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
                     AND tbl_name IN (SELECT value FROM json_each($1))",
                )
                .bind(list)
                .fetch_one(pool)
                .await?
            }
        };
        Ok(count)
    }

    /// Replaces the live tables of `projections` with this store's (a replay's), and their
    /// checkpoints, in one transaction: readers see the old models or the new, never a mix.
    ///
    /// # Errors
    /// The database's; then nothing changed.
    pub async fn swap_in(
        &self,
        live: &ReadStore,
        projections: &[&dyn Projection],
    ) -> Result<(), ReadStoreError> {
        let mut statements = Vec::new();
        if let Pool::Postgres(_) = self.pool {
            // The checkpoint rows first, as every batch takes them first: a batch running now
            // finishes before the swap, and none waits on a table the swap holds while holding
            // a row the swap needs (no deadlock).
            let names: Vec<String> = projections
                .iter()
                .map(|p| format!("'{}'", p.name()))
                .collect();
            statements.push(format!(
                "SELECT position FROM {} WHERE projection IN ({}) ORDER BY projection FOR UPDATE",
                live.checkpoints(),
                names.join(", ")
            ));
        }
        for p in projections {
            let mut tables = vec![(live.table(p.name()), self.table(p.name()))];
            if p.table() == Table::Journal {
                tables.push((live.lines(p.name()), self.lines(p.name())));
            }
            for (old, new) in tables {
                statements.push(format!("DROP TABLE IF EXISTS {old}"));
                statements.push(format!("ALTER TABLE {new} RENAME TO {old}"));
            }
            let name = p.name();
            statements.push(format!(
                "UPDATE {} SET position = (SELECT position FROM {} WHERE projection = '{name}') \
                 WHERE projection = '{name}'",
                live.checkpoints(),
                self.checkpoints(),
            ));
            statements.push(format!(
                "DELETE FROM {} WHERE projection = '{}'",
                self.checkpoints(),
                p.name()
            ));
        }
        self.execute_all(statements).await
    }

    /// Runs `statements` in one transaction (names made by this module only).
    async fn execute_all(&self, statements: Vec<String>) -> Result<(), ReadStoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                for s in statements {
                    sqlx::query(sqlx::AssertSqlSafe(s))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                for s in statements {
                    sqlx::query(sqlx::AssertSqlSafe(s))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }
}
