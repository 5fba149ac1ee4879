//! Checkpoints moved over events that change none of a projection's rows: several projections'
//! in one transaction, each only if it is still where the caller saw it.
//!
//! A charge touches three read models of twelve; the other nine only need their checkpoints to
//! follow the log (a read with `min_position` waits on them). One transaction for all of them
//! instead of one each: their rows locked in name order (as a replay's swap locks them), those
//! still where the caller saw them moved. A checkpoint that moved meanwhile (another worker, a replay's
//! swap) is left alone: that projection then takes the usual way, [`crate::worker::apply`].

use super::{Pool, ReadStore, ReadStoreError};

/// The rows locked in name order, as every transaction that locks several does (a replay's swap):
/// two of them can then not wait for each other.
const LOCK_PG: &str = "SELECT projection, position FROM {c} WHERE projection = ANY($1) ORDER BY projection FOR UPDATE";
const MOVE_PG: &str = "UPDATE {c} SET position = $2 WHERE projection = ANY($1)";
const ADVANCE_SQLITE: &str = "UPDATE {c} SET position = $3 WHERE projection = $1 AND position = $2";

impl ReadStore {
    /// Moves the checkpoint of each `(projection, seen)` to `to`, where it still is `seen`, in
    /// one transaction. Only for events after `seen` up to `to` that change none of the
    /// projection's rows. Answers, in the order of `seen`, which moved.
    ///
    /// # Errors
    /// The database's; then none moved.
    pub async fn advance(
        &self,
        seen: &[(&'static str, i64)],
        to: i64,
    ) -> Result<Vec<bool>, ReadStoreError> {
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        match &self.pool {
            Pool::Postgres(pool) => {
                // As a batch's commit: no wait for the WAL flush (a crash only moves them back).
                let mut tx = pool
                    .begin_with("BEGIN; SET LOCAL synchronous_commit TO OFF")
                    .await?;
                let names: Vec<&str> = seen.iter().map(|(p, _)| *p).collect();
                let held: Vec<(String, i64)> = sqlx::query_as(self.sql(LOCK_PG, ""))
                    .bind(&names)
                    .fetch_all(&mut *tx)
                    .await?;
                let moved: Vec<bool> = seen
                    .iter()
                    .map(|(p, at)| held.iter().any(|(h, now)| h == p && now == at))
                    .collect();
                let moving: Vec<&str> = names
                    .iter()
                    .zip(&moved)
                    .filter(|(_, m)| **m)
                    .map(|(p, _)| *p)
                    .collect();
                if !moving.is_empty() {
                    sqlx::query(self.sql(MOVE_PG, ""))
                        .bind(&moving)
                        .bind(to)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(moved)
            }
            Pool::Sqlite(pool) => {
                let sql = self.sql(ADVANCE_SQLITE, "");
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let mut moved = Vec::with_capacity(seen.len());
                for (p, at) in seen {
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql.0.as_str()))
                        .bind(*p)
                        .bind(*at)
                        .bind(to)
                        .execute(&mut *tx)
                        .await?;
                    moved.push(done.rows_affected() == 1);
                }
                tx.commit().await?;
                Ok(moved)
            }
        }
    }
}
