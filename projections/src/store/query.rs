//! What the read API asks of the read models.

use super::tx::doc_of;
use super::{Pool, ReadStore, ReadStoreError};
use crate::projection::{Doc, JournalLine};

const GET: &str = "SELECT id, customer, status, created, position, body FROM {t} WHERE id = $1";
const LIST: &str = "SELECT id, customer, status, created, position, body FROM {t} \
     WHERE ($1 IS NULL OR customer = $1) AND ($2 IS NULL OR status = $2) \
     AND ($3 IS NULL OR (created, id) < (SELECT created, id FROM {t} WHERE id = $3)) \
     ORDER BY created DESC, id DESC LIMIT $4";
const ALL: &str = "SELECT id, customer, status, created, position, body FROM {t} ORDER BY id";
const LINES: &str = "SELECT position, line, at, entry, account, currency, debit, credit, customer \
     FROM {l} ORDER BY position, line";
const BETWEEN: &str = "SELECT id, customer, status, created, position, body FROM {t} \
     WHERE id >= $1 AND id < $2 ORDER BY id";
const REVENUE: &str = "SELECT substr(at, 1, $4) AS bucket, currency, account, \
     CAST(SUM(debit) AS BIGINT), CAST(SUM(credit) AS BIGINT) FROM {l} \
     WHERE at >= $1 AND at < $2 AND ($3 IS NULL OR currency = $3) \
     AND (account IN ('revenue', 'refunds', 'credit_notes', 'invoice_voids') \
          OR account LIKE 'tax_payable:%') \
     GROUP BY bucket, currency, account ORDER BY bucket, currency, account";
const TRIAL_BALANCE: &str = "SELECT currency, account, CAST(SUM(debit) AS BIGINT), \
     CAST(SUM(credit) AS BIGINT) FROM {l} WHERE ($1 IS NULL OR at <= $1) \
     GROUP BY currency, account ORDER BY currency, account";

/// Which documents a list wants (newest first, Stripe's cursor pagination).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub customer: Option<String>,
    pub status: Option<String>,
    /// The id of the last document of the previous page.
    pub starting_after: Option<String>,
    pub limit: u32,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub data: Vec<(String, Doc)>,
    pub has_more: bool,
}

/// Revenue-side totals of one account in one period bucket and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueLine {
    /// `YYYY-MM-DD` or `YYYY-MM`.
    pub bucket: String,
    pub currency: String,
    pub account: String,
    pub debit: i64,
    pub credit: i64,
}

/// One account's totals in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialBalanceLine {
    pub currency: String,
    pub account: String,
    pub debit: i64,
    pub credit: i64,
}

type Row = (String, Option<String>, Option<String>, String, i64, String);

impl ReadStore {
    /// The document `id` of `projection`.
    ///
    /// # Errors
    /// The database's.
    pub async fn get(&self, projection: &str, id: &str) -> Result<Option<Doc>, ReadStoreError> {
        let sql = self.sql(GET, projection);
        let row: Option<Row> = match &self.pool {
            Pool::Postgres(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
        };
        row.map(|r| doc_of(r).map(|(_, d)| d)).transpose()
    }

    /// A page of `projection`'s documents, newest first.
    ///
    /// # Errors
    /// The database's.
    pub async fn list(
        &self,
        projection: &str,
        filter: &ListFilter,
    ) -> Result<Page, ReadStoreError> {
        let sql = self.sql(LIST, projection);
        let limit = i64::from(filter.limit) + 1;
        let rows: Vec<Row> = match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query_as(sql)
                    .bind(filter.customer.as_deref())
                    .bind(filter.status.as_deref())
                    .bind(filter.starting_after.as_deref())
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(sql)
                    .bind(filter.customer.as_deref())
                    .bind(filter.status.as_deref())
                    .bind(filter.starting_after.as_deref())
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            }
        };
        let has_more = rows.len() > filter.limit as usize;
        let data = rows
            .into_iter()
            .take(filter.limit as usize)
            .map(doc_of)
            .collect::<Result<_, _>>()?;
        Ok(Page { data, has_more })
    }

    /// Every document of `projection`, by id (replay checks, tests).
    ///
    /// # Errors
    /// The database's.
    pub async fn all_docs(&self, projection: &str) -> Result<Vec<(String, Doc)>, ReadStoreError> {
        let sql = self.sql(ALL, projection);
        let rows: Vec<Row> = match &self.pool {
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        rows.into_iter().map(doc_of).collect()
    }

    /// The documents of `projection` with ids in `[from, to)`, by id (counter documents such as
    /// `day:2026-03-01`).
    ///
    /// # Errors
    /// The database's.
    pub async fn docs_between(
        &self,
        projection: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, Doc)>, ReadStoreError> {
        let sql = self.sql(BETWEEN, projection);
        let rows: Vec<Row> = match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query_as(sql)
                    .bind(from)
                    .bind(to)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(sql)
                    .bind(from)
                    .bind(to)
                    .fetch_all(pool)
                    .await?
            }
        };
        rows.into_iter().map(doc_of).collect()
    }

    /// Revenue-side journal totals (revenue, refunds, credit notes, voids, tax payable) posted
    /// in `[from, to)` (RFC 3339 as stored), per bucket of the first `bucket_len` characters of
    /// the time (10: day, 7: month), currency and account.
    ///
    /// # Errors
    /// The database's.
    pub async fn revenue(
        &self,
        projection: &str,
        from: &str,
        to: &str,
        bucket_len: i32,
        currency: Option<&str>,
    ) -> Result<Vec<RevenueLine>, ReadStoreError> {
        let sql = self.sql(REVENUE, projection);
        let rows: Vec<(String, String, String, i64, i64)> = match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query_as(sql)
                    .bind(from)
                    .bind(to)
                    .bind(currency)
                    .bind(bucket_len)
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(sql)
                    .bind(from)
                    .bind(to)
                    .bind(currency)
                    .bind(bucket_len)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(bucket, currency, account, debit, credit)| RevenueLine {
                bucket,
                currency,
                account,
                debit,
                credit,
            })
            .collect())
    }

    /// Every journal line of `projection`, in posting order.
    ///
    /// # Errors
    /// The database's.
    pub async fn all_lines(&self, projection: &str) -> Result<Vec<JournalLine>, ReadStoreError> {
        type LineRow = (
            i64,
            i32,
            String,
            String,
            String,
            String,
            i64,
            i64,
            Option<String>,
        );
        let sql = self.sql(LINES, projection);
        let rows: Vec<LineRow> = match &self.pool {
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(
                |(position, line, at, entry, account, currency, debit, credit, customer)| {
                    JournalLine {
                        position,
                        line,
                        at,
                        entry,
                        account,
                        currency,
                        debit,
                        credit,
                        customer,
                    }
                },
            )
            .collect())
    }

    /// Debit and credit totals per currency and account of journal `projection`, of the lines
    /// posted at or before `as_of` (RFC 3339 as stored; `None`: all).
    ///
    /// # Errors
    /// The database's.
    pub async fn trial_balance(
        &self,
        projection: &str,
        as_of: Option<&str>,
    ) -> Result<Vec<TrialBalanceLine>, ReadStoreError> {
        let sql = self.sql(TRIAL_BALANCE, projection);
        let rows: Vec<(String, String, i64, i64)> = match &self.pool {
            Pool::Postgres(pool) => sqlx::query_as(sql).bind(as_of).fetch_all(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_as(sql).bind(as_of).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(currency, account, debit, credit)| TrialBalanceLine {
                currency,
                account,
                debit,
                credit,
            })
            .collect())
    }
}
