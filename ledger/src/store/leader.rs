//! One active instance of a background role (the scheduler, the relay) across processes:
//! a PostgreSQL session advisory lock, held by a connection of its own for as long as the
//! guard lives. The embedded SQLite store serves one process, which is always the leader.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::StoreError;
use super::open::AnyStore;

/// Holds the role while it lives; dropping it (or the process dying) releases it.
pub struct Leadership {
    _conn: Option<PgConnection>,
}

impl Leadership {
    /// Whether the role is still held (its connection still answers). A lost connection has
    /// released the lock: drop this and try to lead again.
    pub async fn holds(&mut self) -> bool {
        match &mut self._conn {
            None => true,
            Some(conn) => conn.ping().await.is_ok(),
        }
    }
}

/// The advisory-lock key of a role name (stable across processes and versions).
fn lock_key(role: &str) -> i64 {
    // FNV-1a, 64 bits: a fixed, documented function (std's hasher is not stable).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in role.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

impl AnyStore {
    /// The role if no other process holds it now, else `None`.
    ///
    /// # Errors
    /// The database cannot be reached.
    pub async fn try_lead(&self, role: &str) -> Result<Option<Leadership>, StoreError> {
        match self {
            AnyStore::Sqlite(_) => Ok(Some(Leadership { _conn: None })),
            AnyStore::Postgres(pg) => {
                // A connection of its own, outside the pool: the lock lives and dies with it.
                let options = pg.pool().connect_options();
                let mut conn = PgConnection::connect_with(&options).await?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(lock_key(role))
                    .fetch_one(&mut conn)
                    .await?;
                if got {
                    Ok(Some(Leadership { _conn: Some(conn) }))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn role_keys_are_fixed() {
        assert_eq!(super::lock_key("scheduler"), super::lock_key("scheduler"));
        assert_ne!(super::lock_key("scheduler"), super::lock_key("relay"));
    }
}
