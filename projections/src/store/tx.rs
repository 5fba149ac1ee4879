//! One batch's transaction: lock the checkpoint, load documents, write what changed and the new
//! checkpoint, commit. Two workers of one projection serialize on the checkpoint row.

use sqlx::{Postgres, Sqlite, Transaction};

use super::{Pool, ReadStore, ReadStoreError};
use crate::projection::{Doc, JournalLine, ReadSet};

const SELECT_CHECKPOINT_PG: &str = "SELECT position FROM {c} WHERE projection = $1 FOR UPDATE";
const SELECT_CHECKPOINT: &str = "SELECT position FROM {c} WHERE projection = $1";
const LOAD_PG: &str =
    "SELECT id, customer, status, created, position, body FROM {t} WHERE id = ANY($1)";
const LOAD_SQLITE: &str = "SELECT id, customer, status, created, position, body FROM {t} \
     WHERE id IN (SELECT value FROM json_each($1))";
const UPSERT_PG: &str = "INSERT INTO {t} (id, customer, status, created, position, body) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) \
     ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, status = excluded.status, \
     created = excluded.created, position = excluded.position, body = excluded.body";
const INSERT_PG: &str = "INSERT INTO {t} (id, customer, status, created, position, body) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[])";
const UPSERT_SQLITE: &str = "INSERT INTO {t} (id, customer, status, created, position, body) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, status = excluded.status, \
     created = excluded.created, position = excluded.position, body = excluded.body";
const INSERT_SQLITE: &str = "INSERT INTO {t} (id, customer, status, created, position, body) \
     VALUES ($1, $2, $3, $4, $5, $6)";
const JOURNAL_COPY_PG: &str = "COPY {l} \
     (position, line, at, entry, account, currency, debit, credit, customer) FROM STDIN";
const JOURNAL_SQLITE: &str = "INSERT INTO {l} \
     (position, line, at, entry, account, currency, debit, credit, customer) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const DELETE_PG: &str = "DELETE FROM {t} WHERE id = ANY($1)";
const DELETE_SQLITE: &str = "DELETE FROM {t} WHERE id = $1";
const SET_CHECKPOINT: &str = "UPDATE {c} SET position = $2 WHERE projection = $1";

type Row = (String, Option<String>, Option<String>, String, i64, String);

enum Inner {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// An open batch transaction of one projection.
pub struct ReadTx {
    store: ReadStore,
    projection: &'static str,
    checkpoint: i64,
    inner: Inner,
}

impl ReadStore {
    /// Begins a batch of `projection`, holding its checkpoint row until commit or drop.
    ///
    /// # Errors
    /// The database's (also when the projection's tables were never created: [`Self::ensure`]).
    pub async fn begin(&self, projection: &'static str) -> Result<ReadTx, ReadStoreError> {
        let (inner, checkpoint) = match &self.pool {
            Pool::Postgres(pool) => {
                // A read-model commit need not wait for its WAL flush: a crash loses the rows and
                // the checkpoint together, and the events are applied again (the log is the
                // truth; a message acknowledged meanwhile is read from the store as a gap).
                // Sent with `BEGIN` as one simple query: one round trip less per batch.
                let mut tx = pool
                    .begin_with("BEGIN; SET LOCAL synchronous_commit TO OFF")
                    .await?;
                let (position,): (i64,) = sqlx::query_as(self.sql(SELECT_CHECKPOINT_PG, ""))
                    .bind(projection)
                    .fetch_one(&mut *tx)
                    .await?;
                (Inner::Postgres(tx), position)
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let (position,): (i64,) = sqlx::query_as(self.sql(SELECT_CHECKPOINT, ""))
                    .bind(projection)
                    .fetch_one(&mut *tx)
                    .await?;
                (Inner::Sqlite(tx), position)
            }
        };
        Ok(ReadTx {
            store: self.clone(),
            projection,
            checkpoint,
            inner,
        })
    }

    /// The last position `projection` applied (0: none; also when its tables do not exist).
    ///
    /// # Errors
    /// The database's.
    pub async fn checkpoint(&self, projection: &str) -> Result<i64, ReadStoreError> {
        let sql = self.sql(SELECT_CHECKPOINT, "");
        let found: Result<Option<(i64,)>, sqlx::Error> = match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query_as(sql)
                    .bind(projection)
                    .fetch_optional(pool)
                    .await
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(sql)
                    .bind(projection)
                    .fetch_optional(pool)
                    .await
            }
        };
        match found {
            Ok(row) => Ok(row.map_or(0, |(p,)| p)),
            // No checkpoint table yet: nothing applied. Any other failure is one.
            Err(e) if missing_table(&e) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }
}

impl ReadStore {
    /// Every projection's checkpoint, by name (empty before the tables exist).
    ///
    /// # Errors
    /// The database's.
    pub async fn checkpoints_all(
        &self,
    ) -> Result<std::collections::BTreeMap<String, i64>, ReadStoreError> {
        let sql = self.sql("SELECT projection, position FROM {c}", "");
        let rows: Result<Vec<(String, i64)>, sqlx::Error> = match &self.pool {
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        };
        match rows {
            Ok(rows) => Ok(rows.into_iter().collect()),
            Err(e) if missing_table(&e) => Ok(Default::default()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The table does not exist (PostgreSQL `42P01`; SQLite "no such table").
pub(super) fn missing_table(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("42P01") || db.message().contains("no such table")
        }
        _ => false,
    }
}

/// Journal lines in `COPY`'s text format: tab-separated, `\N` for null, backslash escapes.
fn copy_text(lines: &[JournalLine]) -> Vec<u8> {
    use std::fmt::Write;
    fn field(out: &mut String, text: &str) {
        for c in text.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    let mut out = String::with_capacity(lines.len() * 160);
    for l in lines {
        let _ = write!(out, "{}\t{}\t", l.position, l.line);
        for text in [&l.at, &l.entry, &l.account, &l.currency] {
            field(&mut out, text);
            out.push('\t');
        }
        let _ = write!(out, "{}\t{}\t", l.debit, l.credit);
        match &l.customer {
            Some(c) => field(&mut out, c),
            None => out.push_str("\\N"),
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// The ids of `ids` that `set` has not loaded, sorted, once each.
fn missing(set: &ReadSet, ids: Vec<String>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().filter(|id| !set.has_loaded(id)).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The rows of `ids` (PostgreSQL), in a transaction or from the pool.
async fn load_pg<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    sql: sqlx::AssertSqlSafe<String>,
    ids: &[String],
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(sql).bind(ids).fetch_all(executor).await
}

/// The rows of `ids` (SQLite: the ids as one JSON array), in a transaction or from the pool.
async fn load_sqlite<'c>(
    executor: impl sqlx::SqliteExecutor<'c>,
    sql: sqlx::AssertSqlSafe<String>,
    ids: &[String],
) -> Result<Vec<Row>, sqlx::Error> {
    let list = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    sqlx::query_as(sql).bind(list).fetch_all(executor).await
}

/// Loads the `rows` found for `ids` into `set`, and the rest of `ids` as absent.
fn fill(set: &mut ReadSet, rows: Vec<Row>, ids: Vec<String>) -> Result<(), ReadStoreError> {
    for row in rows {
        let (id, doc) = doc_of(row)?;
        set.load(id, Some(doc));
    }
    for id in ids {
        set.load(id, None);
    }
    Ok(())
}

impl ReadStore {
    /// Loads the documents `ids` of `projection` into `set` as committed now, outside any batch
    /// transaction (a batch folded ahead of its transaction: `worker::ahead`).
    ///
    /// # Errors
    /// The database's.
    pub async fn load(
        &self,
        projection: &str,
        set: &mut ReadSet,
        ids: Vec<String>,
    ) -> Result<(), ReadStoreError> {
        let ids = missing(set, ids);
        if ids.is_empty() {
            return Ok(());
        }
        let rows = match &self.pool {
            Pool::Postgres(pool) => load_pg(pool, self.sql(LOAD_PG, projection), &ids).await?,
            Pool::Sqlite(pool) => {
                load_sqlite(pool, self.sql(LOAD_SQLITE, projection), &ids).await?
            }
        };
        fill(set, rows, ids)
    }
}

pub(super) fn doc_of(row: Row) -> Result<(String, Doc), ReadStoreError> {
    let (id, customer, status, created, position, body) = row;
    let body = serde_json::value::RawValue::from_string(body)
        .map_err(|_| ReadStoreError::Corrupt(id.clone()))?;
    Ok((
        id,
        Doc {
            customer,
            status,
            created,
            position,
            body,
        },
    ))
}

impl ReadTx {
    /// The checkpoint as locked by this transaction.
    #[must_use]
    pub fn checkpoint(&self) -> i64 {
        self.checkpoint
    }

    /// Loads the documents `ids` into `set` (absent ones as absent), skipping those it has.
    ///
    /// # Errors
    /// The database's.
    pub async fn load(
        &mut self,
        set: &mut ReadSet,
        ids: Vec<String>,
    ) -> Result<(), ReadStoreError> {
        let ids = missing(set, ids);
        if ids.is_empty() {
            return Ok(());
        }
        let (store, p) = (&self.store, self.projection);
        let rows = match &mut self.inner {
            Inner::Postgres(tx) => load_pg(&mut **tx, store.sql(LOAD_PG, p), &ids).await?,
            Inner::Sqlite(tx) => load_sqlite(&mut **tx, store.sql(LOAD_SQLITE, p), &ids).await?,
        };
        fill(set, rows, ids)
    }

    /// Ends the transaction without a change (releasing the checkpoint row now, not when the
    /// pool next uses the connection).
    ///
    /// # Errors
    /// The database's.
    pub async fn rollback(self) -> Result<(), ReadStoreError> {
        match self.inner {
            Inner::Postgres(tx) => tx.rollback().await?,
            Inner::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Writes what `set` changed, moves the checkpoint to `position` and commits.
    ///
    /// # Errors
    /// The database's; then nothing of the batch is kept.
    pub async fn commit(mut self, set: &ReadSet, position: i64) -> Result<(), ReadStoreError> {
        let store = self.store.clone();
        let p = self.projection;
        match &mut self.inner {
            Inner::Postgres(tx) => {
                let removed = set.removed_docs();
                if !removed.is_empty() {
                    sqlx::query(store.sql(DELETE_PG, p))
                        .bind(removed)
                        .execute(&mut **tx)
                        .await?;
                }
                // A row the store does not hold is inserted: a stray one stops the batch.
                let (held, new): (Vec<_>, Vec<_>) = set
                    .changed_docs()
                    .into_iter()
                    .partition(|(id, _)| set.was_stored(id));
                for (docs, sql) in [(new, INSERT_PG), (held, UPSERT_PG)] {
                    if docs.is_empty() {
                        continue;
                    }
                    sqlx::query(store.sql(sql, p))
                        .bind(docs.iter().map(|(id, _)| *id).collect::<Vec<_>>())
                        .bind(
                            docs.iter()
                                .map(|(_, d)| d.customer.clone())
                                .collect::<Vec<_>>(),
                        )
                        .bind(
                            docs.iter()
                                .map(|(_, d)| d.status.clone())
                                .collect::<Vec<_>>(),
                        )
                        .bind(
                            docs.iter()
                                .map(|(_, d)| d.created.as_str())
                                .collect::<Vec<_>>(),
                        )
                        .bind(docs.iter().map(|(_, d)| d.position).collect::<Vec<_>>())
                        .bind(docs.iter().map(|(_, d)| d.body.get()).collect::<Vec<_>>())
                        .execute(&mut **tx)
                        .await?;
                }
                let lines = set.journal();
                if !lines.is_empty() {
                    // COPY: the bulk of a replay's rows, appended only.
                    let mut copy = tx.copy_in_raw(&store.sql(JOURNAL_COPY_PG, p).0).await?;
                    if let Err(e) = copy.send(copy_text(lines)).await {
                        let _ = copy.abort("journal lines not sent").await;
                        return Err(e.into());
                    }
                    copy.finish().await?;
                }
                sqlx::query(store.sql(SET_CHECKPOINT, p))
                    .bind(p)
                    .bind(position)
                    .execute(&mut **tx)
                    .await?;
            }
            Inner::Sqlite(tx) => {
                let delete = store.sql(DELETE_SQLITE, p).0;
                for id in set.removed_docs() {
                    sqlx::query(sqlx::AssertSqlSafe(delete.as_str()))
                        .bind(id)
                        .execute(&mut **tx)
                        .await?;
                }
                // As on PostgreSQL: a row the store does not hold is inserted.
                let upsert = store.sql(UPSERT_SQLITE, p).0;
                let insert_new = store.sql(INSERT_SQLITE, p).0;
                for (id, d) in set.changed_docs() {
                    let sql = if set.was_stored(id) {
                        &upsert
                    } else {
                        &insert_new
                    };
                    sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(id)
                        .bind(d.customer.as_deref())
                        .bind(d.status.as_deref())
                        .bind(d.created.as_str())
                        .bind(d.position)
                        .bind(d.body.get())
                        .execute(&mut **tx)
                        .await?;
                }
                let insert = store.sql(JOURNAL_SQLITE, p).0;
                for l in set.journal() {
                    sqlx::query(sqlx::AssertSqlSafe(insert.as_str()))
                        .bind(l.position)
                        .bind(l.line)
                        .bind(l.at.as_str())
                        .bind(l.entry.as_str())
                        .bind(l.account.as_str())
                        .bind(l.currency.as_str())
                        .bind(l.debit)
                        .bind(l.credit)
                        .bind(l.customer.as_deref())
                        .execute(&mut **tx)
                        .await?;
                }
                sqlx::query(store.sql(SET_CHECKPOINT, p))
                    .bind(p)
                    .bind(position)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        match self.inner {
            Inner::Postgres(tx) => tx.commit().await?,
            Inner::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(account: &str, customer: Option<&str>) -> JournalLine {
        JournalLine {
            position: 7,
            line: 2,
            at: "2026-01-31T00:00:00.000000Z".into(),
            entry: "ChargeSucceeded".into(),
            account: account.into(),
            currency: "usd".into(),
            debit: 0,
            credit: 1999,
            customer: customer.map(str::to_string),
        }
    }

    #[test]
    fn copy_text_escapes_what_copy_would_read_as_a_separator_or_null() {
        let text = copy_text(&[
            line("cash:a\tb\\c\nd", None),
            line("revenue", Some("cus_1")),
        ]);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "7\t2\t2026-01-31T00:00:00.000000Z\tChargeSucceeded\tcash:a\\tb\\\\c\\nd\tusd\t0\t1999\t\\N\n\
             7\t2\t2026-01-31T00:00:00.000000Z\tChargeSucceeded\trevenue\tusd\t0\t1999\tcus_1\n"
        );
    }
}
