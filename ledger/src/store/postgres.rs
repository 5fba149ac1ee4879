//! The PostgreSQL store (production).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::plan::{BatchState, Plan, Prepared, Written, plan_batch};
use super::writer::{BatchSink, Writer, WriterConfig, WriterStats};
use super::{
    AppendError, CategoryPage, EventStore, Head, StoreError, head_from_row, idempotency_from_row,
};
use crate::access::{ApiKey, KeyStore};
use crate::chain::Hash;
use crate::event::{
    AppendRequest, Committed, IdempotencyRecord, Metadata, Position, RecordedEvent, StreamId,
};
use crate::ids::ApiKeyId;
use crate::upcast::Upcasters;
use crate::vault::{DataKeyStore, subject_object_pattern};

mod known;
use known::Known;

/// Connections of the writer (one batch at a time; a second for the rare overlap of a broken
/// connection being replaced).
const WRITER_CONNECTIONS: u32 = 2;

/// The migrations in `migrations/postgres`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Bounded by the head read just before: every event up to it is committed (appends take the
/// head row's lock and move it in their own commit), so the events of other categories up to it
/// are skipped for good.
const READ_CATEGORIES: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE position > $1 AND position <= $2 \
     AND split_part(stream_id, '-', 1) = ANY($4) ORDER BY position LIMIT $3"
);

const READ_STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE stream_id = $1 ORDER BY stream_version"
);
const READ_PAGE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE position > $1 ORDER BY position LIMIT $2"
);
const READ_PAGE_OF_STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE stream_id = $3 AND position > $1 ORDER BY position LIMIT $2"
);
const READ_PAGE_OF_TYPE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE event_type = $3 AND position > $1 ORDER BY position LIMIT $2"
);
const READ_PAGE_OF_STREAM_AND_TYPE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE stream_id = $3 AND event_type = $4 AND position > $1 \
     ORDER BY position LIMIT $2"
);
const READ_EVENT: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE event_id = $1"
);

/// Event store on PostgreSQL.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    writer: Writer,
    upcasters: Arc<Upcasters>,
}

impl PgStore {
    /// Connects (pool of `max_connections`) and starts this process's writer task.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(10))
            // A broken connection fails its statement and is dropped; a ping before every
            // acquire would add a round trip to every append batch.
            .test_before_acquire(false)
            .connect(url)
            .await?;
        Ok(Self::from_pool(
            pool,
            WriterConfig::default(),
            Upcasters::new(),
        ))
    }

    pub fn from_pool(pool: PgPool, config: WriterConfig, upcasters: Upcasters) -> PgStore {
        // The writer's own connections, opened on its own runtime (`Writer::spawn_on_thread`).
        let options = pool.connect_options().as_ref().clone();
        let make = move || -> Arc<dyn BatchSink> {
            Arc::new(PgSink {
                pool: PgPoolOptions::new()
                    .max_connections(WRITER_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(10))
                    .test_before_acquire(false)
                    .connect_lazy_with(options),
                known: Mutex::new(Known::default()),
            })
        };
        PgStore {
            pool,
            writer: Writer::spawn_on_thread(make, config),
            upcasters: Arc::new(upcasters),
        }
    }

    /// Applies pending migrations (safe to run from several processes at once: sqlx takes an
    /// advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Reads the whole log with `COPY (SELECT * FROM events ORDER BY position) TO STDOUT` and
    /// discards it: PostgreSQL's own rate of reading the log in order (the replay benchmark's
    /// baseline). Answers the bytes read.
    ///
    /// # Errors
    /// The database's.
    pub async fn copy_log_out(&self) -> Result<u64, StoreError> {
        use futures_util::StreamExt;
        use sqlx::postgres::PgPoolCopyExt;
        let mut copy = self
            .pool
            .copy_out_raw("COPY (SELECT * FROM events ORDER BY position) TO STDOUT")
            .await?;
        let mut bytes = 0u64;
        while let Some(chunk) = copy.next().await {
            bytes += chunk?.len() as u64;
        }
        Ok(bytes)
    }
}

struct PgSink {
    pool: PgPool,
    /// What the last batch left known (only the writer task uses it).
    known: Mutex<Known>,
}

impl PgSink {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The batch planned on what is known and committed in one round trip, if the database
    /// confirms that knowledge; `None` when it cannot be tried or was not confirmed.
    async fn write_known(&self, requests: &[Prepared]) -> Result<Option<Written>, StoreError> {
        let Some((state, checks)) = self.known().guess(requests) else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let plan = plan_batch(state, requests, Utc::now());
        if plan.rows.is_empty() {
            // Nothing to write: whether every refusal was right needs the real state.
            return Ok(None);
        }
        let checks = checks.for_plan(requests, &plan);
        match known::append_checked(&self.pool, &checks, &plan).await {
            Ok(true) => {
                self.known().committed(&plan);
                tracing::debug!(
                    requests = requests.len(),
                    events = plan.rows.len(),
                    total_us = started.elapsed().as_micros() as u64,
                    "append batch committed in one round trip"
                );
                Ok(Some(plan.written()))
            }
            Ok(false) => {
                // Another process appended: what is known of other streams may be stale too.
                self.known().forget();
                Ok(None)
            }
            // Refused by the database (a unique key: a stream guessed absent exists, a key is
            // taken; or a check): the statement rolled back, nothing was written; the
            // transaction path says which request it was (or works where this one cannot).
            Err(sqlx::Error::Database(_)) => {
                self.known().forget();
                Ok(None)
            }
            Err(e) => {
                self.known().forget();
                Err(e.into())
            }
        }
    }

    /// The batch in a transaction of its own: lock, read, plan, insert, commit.
    async fn write_read(&self, requests: &[Prepared]) -> Result<Written, StoreError> {
        let started = std::time::Instant::now();
        let mut tx = self.pool.begin().await?;
        let state = read_batch_state(&mut tx, requests).await?;
        self.known().read(&state);
        let locked = started.elapsed();
        let plan = plan_batch(state, requests, Utc::now());
        if plan.rows.is_empty() {
            tx.rollback().await?;
            return Ok(Written::nothing(plan.outcomes));
        }
        insert_plan(&mut tx, &plan).await?;
        tx.commit().await?;
        self.known().committed(&plan);
        tracing::debug!(
            requests = requests.len(),
            events = plan.rows.len(),
            lock_and_read_us = locked.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "append batch committed"
        );
        Ok(plan.written())
    }
}

#[async_trait]
impl BatchSink for PgSink {
    async fn write_batch(&self, requests: &[Prepared]) -> Result<Written, StoreError> {
        if let Some(written) = self.write_known(requests).await? {
            return Ok(written);
        }
        let written = self.write_read(requests).await;
        if written.is_err() {
            self.known().forget();
        }
        written
    }
}

async fn read_batch_state(
    tx: &mut Transaction<'static, Postgres>,
    requests: &[Prepared],
) -> Result<BatchState, StoreError> {
    let requests = || requests.iter().map(|p| &p.request);
    // The lock that orders every append of every process.
    let (position, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM ledger_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut **tx)
            .await?;
    let streams: Vec<String> = requests()
        .map(|r| r.stream_id.as_str().to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // One index probe per stream (a correlated `max` over the (stream_id, stream_version) key),
    // whatever plan the prepared statement gets: `stream_id = ANY($1) GROUP BY` turned into a
    // scan of the whole table under a generic plan.
    let versions: HashMap<String, i64> = sqlx::query_as::<_, (String, Option<i64>)>(
        "SELECT s.id, (SELECT max(e.stream_version) FROM events e WHERE e.stream_id = s.id) \
         FROM UNNEST($1::text[]) AS s(id)",
    )
    .bind(&streams)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .filter_map(|(id, v)| v.map(|v| (id, v)))
    .collect();
    let (key_owners, keys): (Vec<String>, Vec<String>) = requests()
        .filter_map(|r| r.idempotency.as_ref())
        .map(|i| (i.api_key_id.clone(), i.key.clone()))
        .unzip();
    let taken_keys = if keys.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_as(
            "SELECT i.api_key_id, i.key FROM idempotency_keys i \
             JOIN UNNEST($1::text[], $2::text[]) AS k(a, k) ON i.api_key_id = k.a AND i.key = k.k",
        )
        .bind(&key_owners)
        .bind(&keys)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect()
    };
    let head = head_from_row(position, &hash)?;
    Ok(BatchState {
        head_position: head.position,
        head_hash: head.hash,
        versions,
        taken_keys,
    })
}

async fn insert_plan(
    tx: &mut Transaction<'static, Postgres>,
    plan: &Plan,
) -> Result<(), StoreError> {
    let rows = &plan.rows;
    // One statement inserts the rows and moves the head. (Not `COPY`: sqlx sets no TCP_NODELAY,
    // and COPY's separate data and done messages then wait out delayed ACKs, ~40 ms a batch.)
    let query = sqlx::query(
        "WITH inserted AS ( \
            INSERT INTO events (position, event_id, stream_id, stream_version, event_type, \
                schema_version, payload, metadata, occurred_at, recorded_at, prev_hash, hash) \
            SELECT p, e, s, v, t, sv, pl::jsonb, md::jsonb, oa, ra, ph, h \
            FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::int[], \
                        $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bytea[], \
                        $12::bytea[]) AS u(p, e, s, v, t, sv, pl, md, oa, ra, ph, h) \
            RETURNING 1) \
         UPDATE ledger_head SET position = $13, hash = $14 WHERE id = 1",
    );
    bind_rows(query, rows)
        .bind(plan.head_position.0)
        .bind(plan.head_hash.0.to_vec())
        .execute(&mut **tx)
        .await?;

    let ids = &plan.idempotency;
    if !ids.is_empty() {
        let query = sqlx::query(
            "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, body, position) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::bigint[])",
        );
        bind_idempotency(query, ids).execute(&mut **tx).await?;
    }

    Ok(())
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds the columns of `rows`, one array each, in `events`' column order (both insert paths).
pub(super) fn bind_rows<'q>(query: PgQuery<'q>, rows: &'q [super::plan::Row]) -> PgQuery<'q> {
    query
        .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.event_id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.stream_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.stream_version).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.schema_version).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.payload.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.metadata.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.prev_hash.0.to_vec())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.hash.0.to_vec()).collect::<Vec<_>>())
}

/// Binds the columns of idempotency records, one array each (both insert paths).
pub(super) fn bind_idempotency<'q>(
    query: PgQuery<'q>,
    ids: &'q [IdempotencyRecord],
) -> PgQuery<'q> {
    query
        .bind(
            ids.iter()
                .map(|i| i.api_key_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(ids.iter().map(|i| i.key.as_str()).collect::<Vec<_>>())
        .bind(
            ids.iter()
                .map(|i| i.fingerprint.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(ids.iter().map(|i| i32::from(i.status)).collect::<Vec<_>>())
        .bind(ids.iter().map(|i| i.body.as_str()).collect::<Vec<_>>())
        .bind(ids.iter().map(|i| i.position.0).collect::<Vec<_>>())
}

fn decode(row: PgRow) -> Result<RecordedEvent, StoreError> {
    let hash = |col: &str| -> Result<Hash, StoreError> {
        let bytes: Vec<u8> = row.try_get(col)?;
        Hash::from_slice(&bytes).ok_or_else(|| StoreError::Corrupt(format!("{col} length")))
    };
    Ok(RecordedEvent {
        position: Position(row.try_get("position")?),
        event_id: row.try_get("event_id")?,
        stream_id: StreamId::new(row.try_get::<String, _>("stream_id")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        stream_version: row.try_get("stream_version")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: row.try_get("payload")?,
        // Decoded straight from the text (not through a `Value` first).
        metadata: row
            .try_get::<sqlx::types::Json<Metadata>, _>("metadata")
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .0,
        occurred_at: row.try_get::<DateTime<Utc>, _>("occurred_at")?,
        recorded_at: row.try_get::<DateTime<Utc>, _>("recorded_at")?,
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
    })
}

#[async_trait]
impl EventStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = $1")
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

    async fn read_categories(
        &self,
        after: Position,
        limit: u32,
        categories: &[&str],
    ) -> Result<CategoryPage, StoreError> {
        if limit == 0 {
            return Ok(CategoryPage::nothing_after(after));
        }
        // The head first: every event up to it is committed, so the events of other categories
        // up to it can be skipped for good (read after the page, one committed meanwhile
        // could be skipped unread).
        let head = self.head().await?.position;
        if head <= after {
            return Ok(CategoryPage::nothing_after(after));
        }
        let rows = sqlx::query(READ_CATEGORIES)
            .bind(after.0)
            .bind(head.0)
            .bind(i64::from(limit))
            .bind(categories)
            .fetch_all(&self.pool)
            .await?;
        let events = rows
            .into_iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        let more = events.len() == limit as usize;
        let through = match events.last() {
            Some(last) if more => last.position,
            _ => head,
        };
        Ok(CategoryPage {
            events,
            through,
            more,
        })
    }

    async fn read_event(&self, event_id: uuid::Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let row = sqlx::query(READ_EVENT)
            .bind(event_id)
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
        let row: Option<(String, i32, String, i64)> = sqlx::query_as(
            "SELECT fingerprint, status, body, position FROM idempotency_keys \
             WHERE api_key_id = $1 AND key = $2",
        )
        .bind(api_key_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(f, s, b, p)| idempotency_from_row(api_key_id, key, (f, i64::from(s), b, p))))
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

fn decode_key(row: PgRow) -> Result<ApiKey, StoreError> {
    let id: String = row.try_get("id")?;
    let scope: String = row.try_get("scope")?;
    Ok(ApiKey {
        id: id
            .parse()
            .map_err(|e: crate::ids::IdError| StoreError::Corrupt(e.to_string()))?,
        prefix: row.try_get("prefix")?,
        scope: scope.parse().map_err(StoreError::Corrupt)?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl KeyStore for PgStore {
    async fn insert_key(&self, key: &ApiKey, digest: [u8; 32]) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, prefix, digest, scope, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id.to_string())
        .bind(&key.prefix)
        .bind(digest.to_vec())
        .bind(key.scope.as_str())
        .bind(key.created_at)
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
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_string())
                .bind(at)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_active_key(&self, digest: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query(
            "SELECT id, prefix, scope, created_at, revoked_at FROM api_keys \
             WHERE digest = $1 AND revoked_at IS NULL",
        )
        .bind(digest.to_vec())
        .fetch_optional(&self.pool)
        .await?
        .map(decode_key)
        .transpose()
    }
}

#[async_trait]
impl DataKeyStore for PgStore {
    async fn insert_data_key(
        &self,
        subject: &str,
        wrapped: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query(
            "INSERT INTO data_keys (subject, wrapped, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (subject) DO NOTHING",
        )
        .bind(subject)
        .bind(wrapped)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(self.data_key(subject).await?.flatten())
    }

    async fn data_key(&self, subject: &str) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT wrapped FROM data_keys WHERE subject = $1")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn shred_data_key(&self, subject: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE data_keys SET wrapped = NULL, shredded_at = $2 \
             WHERE subject = $1 AND wrapped IS NOT NULL",
        )
        .bind(subject)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE body LIKE $1 ESCAPE '\\'")
            .bind(subject_object_pattern(subject))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}
