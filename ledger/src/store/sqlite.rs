//! The embedded SQLite store (the default: no services needed).
//!
//! One file in WAL mode with `synchronous=FULL` (a committed event survives a power cut). Appends
//! take the write lock up front (`BEGIN IMMEDIATE`), which plays the part of PostgreSQL's head-row
//! lock: one appending transaction at a time, across processes too.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::plan::{BatchState, Plan, Prepared, Written, plan_batch};
use super::writer::{BatchSink, Writer, WriterConfig, WriterStats};
use super::{AppendError, EventStore, Head, StoreError, head_from_row, idempotency_from_row};
use crate::access::{ApiKey, KeyStore};
use crate::chain::Hash;
use crate::event::{
    AppendRequest, Committed, IdempotencyRecord, Metadata, Position, RecordedEvent, StreamId,
};
use crate::ids::ApiKeyId;
use crate::upcast::Upcasters;
use crate::vault::{DataKeyStore, subject_object_pattern};

/// The migrations in `migrations/sqlite`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

const READ_STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE stream_id = ?1 ORDER BY stream_version"
);
const READ_PAGE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
);
const READ_PAGE_OF_STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE stream_id = ?3 AND position > ?1 ORDER BY position LIMIT ?2"
);
const READ_PAGE_OF_TYPE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE event_type = ?3 AND position > ?1 ORDER BY position LIMIT ?2"
);
const READ_PAGE_OF_STREAM_AND_TYPE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE stream_id = ?3 AND event_type = ?4 AND position > ?1 \
     ORDER BY position LIMIT ?2"
);
const READ_EVENT: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE event_id = ?1"
);

/// File name of the log inside the data directory.
pub const FILE_NAME: &str = "billing.db";

/// Event store in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
    upcasters: Arc<Upcasters>,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/billing.db` and starts this process's writer task.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", data_dir.display())))?;
        Self::open_file(
            &data_dir.join(FILE_NAME),
            WriterConfig::default(),
            Upcasters::new(),
        )
        .await
    }

    pub async fn open_file(
        file: &Path,
        config: WriterConfig,
        upcasters: Upcasters,
    ) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        let sink = Arc::new(SqliteSink { pool: pool.clone() });
        Ok(SqliteStore {
            pool,
            writer: Writer::spawn(sink, config),
            upcasters: Arc::new(upcasters),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// RFC 3339, UTC, exactly six fractional digits: sorts as text and round-trips exactly.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

struct SqliteSink {
    pool: SqlitePool,
}

#[async_trait]
impl BatchSink for SqliteSink {
    async fn write_batch(&self, requests: &[Prepared]) -> Result<Written, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let state = read_batch_state(&mut tx, requests).await?;
        let plan = plan_batch(state, requests, Utc::now());
        if plan.rows.is_empty() {
            tx.rollback().await?;
            return Ok(Written::nothing(plan.outcomes));
        }
        insert_plan(&mut tx, &plan).await?;
        tx.commit().await?;
        Ok(plan.written())
    }
}

async fn read_batch_state(
    tx: &mut Transaction<'static, Sqlite>,
    requests: &[Prepared],
) -> Result<BatchState, StoreError> {
    let requests = || requests.iter().map(|p| &p.request);
    let (position, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM ledger_head WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
    let mut versions = HashMap::new();
    let streams: HashSet<&str> = requests().map(|r| r.stream_id.as_str()).collect();
    for stream in streams {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = ?1")
                .bind(stream)
                .fetch_one(&mut **tx)
                .await?;
        if let Some(v) = v {
            versions.insert(stream.to_string(), v);
        }
    }
    let mut taken_keys = HashSet::new();
    for record in requests().filter_map(|r| r.idempotency.as_ref()) {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM idempotency_keys WHERE api_key_id = ?1 AND key = ?2")
                .bind(&record.api_key_id)
                .bind(&record.key)
                .fetch_optional(&mut **tx)
                .await?;
        if found.is_some() {
            taken_keys.insert((record.api_key_id.clone(), record.key.clone()));
        }
    }
    let head = head_from_row(position, &hash)?;
    Ok(BatchState {
        head_position: head.position,
        head_hash: head.hash,
        versions,
        taken_keys,
    })
}

async fn insert_plan(tx: &mut Transaction<'static, Sqlite>, plan: &Plan) -> Result<(), StoreError> {
    for r in &plan.rows {
        sqlx::query(
            "INSERT INTO events (position, event_id, stream_id, stream_version, event_type, \
                schema_version, payload, metadata, occurred_at, recorded_at, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .bind(r.position)
        .bind(r.event_id.as_bytes().as_slice())
        .bind(r.stream_id.as_str())
        .bind(r.stream_version)
        .bind(r.event_type.as_str())
        .bind(r.schema_version)
        .bind(r.payload.as_str())
        .bind(r.metadata.as_str())
        .bind(ts(r.occurred_at))
        .bind(ts(r.recorded_at))
        .bind(r.prev_hash.0.as_slice())
        .bind(r.hash.0.as_slice())
        .execute(&mut **tx)
        .await?;
    }
    for i in &plan.idempotency {
        sqlx::query(
            "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, body, position) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&i.api_key_id)
        .bind(&i.key)
        .bind(&i.fingerprint)
        .bind(i32::from(i.status))
        .bind(&i.body)
        .bind(i.position.0)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE ledger_head SET position = ?1, hash = ?2 WHERE id = 1")
        .bind(plan.head_position.0)
        .bind(plan.head_hash.0.as_slice())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn decode(row: SqliteRow) -> Result<RecordedEvent, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let hash = |col: &str| -> Result<Hash, StoreError> {
        let bytes: Vec<u8> = row.try_get(col)?;
        Hash::from_slice(&bytes).ok_or_else(|| StoreError::Corrupt(format!("{col} length")))
    };
    let id: Vec<u8> = row.try_get("event_id")?;
    let payload: String = row.try_get("payload")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(RecordedEvent {
        position: Position(row.try_get("position")?),
        event_id: uuid::Uuid::from_slice(&id).map_err(|e| corrupt(&e))?,
        stream_id: StreamId::new(row.try_get::<String, _>("stream_id")?)
            .map_err(|e| corrupt(&e))?,
        stream_version: row.try_get("stream_version")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt(&e))?,
        metadata: serde_json::from_str::<Metadata>(&metadata).map_err(|e| corrupt(&e))?,
        occurred_at: parse_ts(&row.try_get::<String, _>("occurred_at")?)?,
        recorded_at: parse_ts(&row.try_get::<String, _>("recorded_at")?)?,
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn append_many(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Vec<Result<Committed, AppendError>> {
        self.writer.submit(requests).await
    }

    async fn append_atomic(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Committed>, AppendError> {
        self.writer.submit_atomic(requests).await
    }

    async fn read_stream(&self, stream_id: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(READ_STREAM)
            .bind(stream_id.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|r| decode(r).map(|e| self.upcasters.apply(e)))
            .collect()
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<i64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = ?1")
                .bind(stream_id.as_str())
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    async fn read_page_filtered(
        &self,
        after: Position,
        limit: u32,
        stream_id: Option<&StreamId>,
        event_type: Option<&str>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let (sql, first, second) = match (stream_id, event_type) {
            (None, None) => (READ_PAGE, None, None),
            (Some(s), None) => (READ_PAGE_OF_STREAM, Some(s.as_str()), None),
            (None, Some(t)) => (READ_PAGE_OF_TYPE, Some(t), None),
            (Some(s), Some(t)) => (READ_PAGE_OF_STREAM_AND_TYPE, Some(s.as_str()), Some(t)),
        };
        // Parameters 1 and 2 are `after` and `limit` in every query; then stream, type.
        let mut query = sqlx::query(sql).bind(after.0).bind(i64::from(limit));
        for value in [first, second].into_iter().flatten() {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.into_iter().map(decode).collect()
    }

    async fn read_page_raw(
        &self,
        after: Position,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(READ_PAGE)
            .bind(after.0)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(decode).collect()
    }

    async fn read_event(&self, event_id: uuid::Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let row = sqlx::query(READ_EVENT)
            .bind(event_id.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(r).map(|e| self.upcasters.apply(e)))
            .transpose()
    }

    async fn head(&self) -> Result<Head, StoreError> {
        let (position, hash): (i64, Vec<u8>) =
            sqlx::query_as("SELECT position, hash FROM ledger_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        head_from_row(position, &hash)
    }

    async fn find_idempotency(
        &self,
        api_key_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row: Option<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT fingerprint, status, body, position FROM idempotency_keys \
             WHERE api_key_id = ?1 AND key = ?2",
        )
        .bind(api_key_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| idempotency_from_row(api_key_id, key, r)))
    }

    fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    fn tail(&self) -> Option<&super::Tail> {
        Some(self.writer.tail())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

fn decode_key(row: SqliteRow) -> Result<ApiKey, StoreError> {
    let id: String = row.try_get("id")?;
    let scope: String = row.try_get("scope")?;
    let revoked: Option<String> = row.try_get("revoked_at")?;
    Ok(ApiKey {
        id: ApiKeyId::from_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        prefix: row.try_get("prefix")?,
        scope: scope.parse().map_err(StoreError::Corrupt)?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        revoked_at: revoked.as_deref().map(parse_ts).transpose()?,
    })
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: &ApiKey, digest: [u8; 32]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, prefix, digest, scope, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(key.id.to_string())
        .bind(&key.prefix)
        .bind(digest.as_slice())
        .bind(key.scope.as_str())
        .bind(ts(key.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query("SELECT id, prefix, scope, created_at, revoked_at FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(decode_key)
            .collect()
    }

    async fn revoke_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .bind(id.to_string())
                .bind(ts(at))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_active_key(&self, digest: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query(
            "SELECT id, prefix, scope, created_at, revoked_at FROM api_keys \
             WHERE digest = ?1 AND revoked_at IS NULL",
        )
        .bind(digest.as_slice())
        .fetch_optional(&self.pool)
        .await?
        .map(decode_key)
        .transpose()
    }
}

#[async_trait]
impl DataKeyStore for SqliteStore {
    async fn insert_data_key(
        &self,
        subject: &str,
        wrapped: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query(
            "INSERT INTO data_keys (subject, wrapped, created_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (subject) DO NOTHING",
        )
        .bind(subject)
        .bind(wrapped)
        .bind(ts(at))
        .execute(&self.pool)
        .await?;
        Ok(self.data_key(subject).await?.flatten())
    }

    async fn data_key(&self, subject: &str) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT wrapped FROM data_keys WHERE subject = ?1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn shred_data_key(&self, subject: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE data_keys SET wrapped = NULL, shredded_at = ?2 \
             WHERE subject = ?1 AND wrapped IS NOT NULL",
        )
        .bind(subject)
        .bind(ts(at))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE body LIKE ?1 ESCAPE '\\'")
            .bind(subject_object_pattern(subject))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
