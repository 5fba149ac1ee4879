//! Checkpoints moved over events that change none of a projection's rows: several projections'
//! in one transaction, each only if it is still where the caller saw it.
//!
//! A charge touches three read models of twelve; the other nine only need their checkpoints to
//! follow the log (a read with `min_position` waits on them). One statement for all of them
//! instead of a transaction each. A checkpoint that moved meanwhile (another worker, a replay's
//! swap) is left alone: that projection then takes the usual way, [`crate::worker::apply`].

use super::{Pool, ReadStore, ReadStoreError};

const ADVANCE_PG: &str = "UPDATE {c} AS c SET position = $3 \
     FROM UNNEST($1::text[], $2::bigint[]) AS seen(projection, position) \
     WHERE c.projection = seen.projection AND c.position = seen.position \
     RETURNING c.projection";
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
        let sql = self.sql(
            match self.pool {
                Pool::Postgres(_) => ADVANCE_PG,
                Pool::Sqlite(_) => ADVANCE_SQLITE,
            },
            "",
        );
        match &self.pool {
            Pool::Postgres(pool) => {
                // As a batch's commit: no wait for the WAL flush (a crash only moves them back).
                let mut tx = pool
                    .begin_with("BEGIN; SET LOCAL synchronous_commit TO OFF")
                    .await?;
                let moved: Vec<(String,)> = sqlx::query_as(sql)
                    .bind(seen.iter().map(|(p, _)| *p).collect::<Vec<_>>())
                    .bind(seen.iter().map(|(_, at)| *at).collect::<Vec<_>>())
                    .bind(to)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(seen
                    .iter()
                    .map(|(p, _)| moved.iter().any(|(m,)| m == p))
                    .collect())
            }
            Pool::Sqlite(pool) => {
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
