//! Cursors of the write side's own consumers of the log (the webhook reactor): how far each has
//! acted, so a new process resumes there instead of reading the log from the start. A table
//! `<prefix>cursors` beside the checkpoints, kept apart from them: a cursor is not a read model
//! and says nothing of projection lag. It only moves forward (several processes may save).

use super::tx::missing_table;
use super::{Pool, ReadStore, ReadStoreError};

const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS {k} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)";
const SELECT: &str = "SELECT position FROM {k} WHERE name = $1";
const SAVE_PG: &str = "INSERT INTO {k} (name, position) VALUES ($1, $2) ON CONFLICT (name) \
     DO UPDATE SET position = GREATEST({k}.position, EXCLUDED.position)";
const SAVE_SQLITE: &str = "INSERT INTO {k} (name, position) VALUES ($1, $2) ON CONFLICT (name) \
     DO UPDATE SET position = max({k}.position, excluded.position)";

impl ReadStore {
    fn cursor_sql(&self, template: &str) -> sqlx::AssertSqlSafe<String> {
        let s = template.replace("{k}", &format!("{}cursors", self.prefix));
        sqlx::AssertSqlSafe(match self.pool {
            Pool::Postgres(_) => s,
            Pool::Sqlite(_) => s.replace('$', "?"),
        })
    }

    /// Where `name` stopped (0: never saved).
    ///
    /// # Errors
    /// The database's.
    pub async fn cursor(&self, name: &str) -> Result<i64, ReadStoreError> {
        let sql = self.cursor_sql(SELECT);
        let found: Result<Option<(i64,)>, sqlx::Error> = match &self.pool {
            Pool::Postgres(pool) => sqlx::query_as(sql).bind(name).fetch_optional(pool).await,
            Pool::Sqlite(pool) => sqlx::query_as(sql).bind(name).fetch_optional(pool).await,
        };
        match found {
            Ok(row) => Ok(row.map_or(0, |(p,)| p)),
            Err(e) if missing_table(&e) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves `name` forward to `position` (never back). The table is made on first use.
    ///
    /// # Errors
    /// The database's.
    pub async fn save_cursor(&self, name: &str, position: i64) -> Result<(), ReadStoreError> {
        match self.upsert_cursor(name, position).await {
            Err(e) if missing_table(&e) => {
                let create = self.cursor_sql(CREATE);
                match &self.pool {
                    Pool::Postgres(pool) => sqlx::query(create).execute(pool).await.map(|_| ())?,
                    Pool::Sqlite(pool) => sqlx::query(create).execute(pool).await.map(|_| ())?,
                }
                Ok(self.upsert_cursor(name, position).await?)
            }
            other => Ok(other?),
        }
    }

    async fn upsert_cursor(&self, name: &str, position: i64) -> Result<(), sqlx::Error> {
        match &self.pool {
            Pool::Postgres(pool) => {
                sqlx::query(self.cursor_sql(SAVE_PG))
                    .bind(name)
                    .bind(position)
                    .execute(pool)
                    .await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query(self.cursor_sql(SAVE_SQLITE))
                    .bind(name)
                    .bind(position)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }
}
