//! The harness: a fresh store of either backend per test, raw database access for the tests that
//! play the attacker, a counting allocator, and small builders for events and requests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use ledger::access::KeyStore;
use ledger::store::WriterConfig;
use ledger::store::postgres::PgStore;
use ledger::store::sqlite::SqliteStore;
use ledger::upcast::Upcasters;
use ledger::{AppendRequest, EventStore, ExpectedVersion, NewEvent, StreamId};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Connection};

// ---------------------------------------------------------------------------------------------
// Memory accounting

/// `System`, counting the bytes currently allocated, the peak since the last reset, and every
/// byte ever allocated.
pub struct CountingAlloc {
    current: AtomicUsize,
    peak: AtomicUsize,
    allocated: AtomicUsize,
}

#[global_allocator]
pub static ALLOC: CountingAlloc = CountingAlloc {
    current: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    allocated: AtomicUsize::new(0),
};

impl CountingAlloc {
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub fn allocated(&self) -> usize {
        self.allocated.load(Ordering::SeqCst)
    }

    /// Starts a new measurement: the peak becomes the current value.
    pub fn reset_peak(&self) {
        self.peak.store(self.current(), Ordering::SeqCst);
    }

    fn grew(&self, bytes: usize) {
        self.allocated.fetch_add(bytes, Ordering::SeqCst);
        let now = self.current.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn shrank(&self, bytes: usize) {
        self.current.fetch_sub(bytes, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                self.grew(new_size - layout.size());
            } else {
                self.shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Tests share the process under `cargo test` (not under nextest): the memory test takes this
/// lock exclusively so no other test allocates while it measures.
static ISOLATION: RwLock<()> = RwLock::new(());

#[allow(dead_code)] // the guards are held, never read
enum Isolation {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

// ---------------------------------------------------------------------------------------------
// The harness

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Postgres,
    Sqlite,
}

/// A fresh, migrated store; the database (or directory) is removed when it is dropped.
pub struct Harness {
    pub store: Arc<dyn EventStore>,
    pub keys: Arc<dyn KeyStore>,
    pub data_keys: Arc<dyn ledger::vault::DataKeyStore>,
    backend: Backend,
    _isolation: Isolation,
}

enum Backend {
    Postgres {
        pool: PgPool,
        options: Box<PgConnectOptions>,
        _db: DropDatabase,
    },
    Sqlite {
        pool: SqlitePool,
        file: PathBuf,
        _dir: RemoveDir,
    },
}

impl Harness {
    pub async fn start(kind: Kind) -> Harness {
        Self::open(kind, Upcasters::new(), false).await
    }

    pub async fn with_upcasters(kind: Kind, upcasters: Upcasters) -> Harness {
        Self::open(kind, upcasters, false).await
    }

    /// A store while no other test of this process runs (for measuring memory).
    pub async fn exclusive(kind: Kind) -> Harness {
        Self::open(kind, Upcasters::new(), true).await
    }

    async fn open(kind: Kind, upcasters: Upcasters, exclusive: bool) -> Harness {
        let isolation = if exclusive {
            Isolation::Exclusive(ISOLATION.write().unwrap_or_else(|e| e.into_inner()))
        } else {
            Isolation::Shared(ISOLATION.read().unwrap_or_else(|e| e.into_inner()))
        };
        match kind {
            Kind::Postgres => {
                let (options, db) = create_database().await;
                let pool = pg_pool(&options).await;
                let pg = PgStore::from_pool(pool.clone(), WriterConfig::default(), upcasters);
                pg.migrate()
                    .await
                    .expect("migrate the PostgreSQL test database");
                Harness {
                    store: Arc::new(pg.clone()),
                    keys: Arc::new(pg.clone()),
                    data_keys: Arc::new(pg),
                    backend: Backend::Postgres {
                        pool,
                        options: Box::new(options),
                        _db: db,
                    },
                    _isolation: isolation,
                }
            }
            Kind::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("kb-test-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).expect("create the test directory");
                let dir = RemoveDir(dir);
                let file = dir.0.join("billing.db");
                let lite = SqliteStore::open_file(&file, WriterConfig::default(), upcasters)
                    .await
                    .expect("open the SQLite test file");
                lite.migrate().await.expect("migrate the SQLite test file");
                Harness {
                    store: Arc::new(lite.clone()),
                    keys: Arc::new(lite.clone()),
                    data_keys: Arc::new(lite.clone()),
                    backend: Backend::Sqlite {
                        pool: lite.pool().clone(),
                        file,
                        _dir: dir,
                    },
                    _isolation: isolation,
                }
            }
        }
    }

    /// Another store on the same database, with its own connections and writer task: what a
    /// second process would have.
    pub async fn open_another(&self) -> Arc<dyn EventStore> {
        match &self.backend {
            Backend::Postgres { options, .. } => {
                let pool = pg_pool(options).await;
                Arc::new(PgStore::from_pool(
                    pool,
                    WriterConfig::default(),
                    Upcasters::new(),
                ))
            }
            Backend::Sqlite { file, .. } => Arc::new(
                SqliteStore::open_file(file, WriterConfig::default(), Upcasters::new())
                    .await
                    .expect("open the SQLite test file again"),
            ),
        }
    }

    /// Runs SQL directly on the database, as someone with database access would.
    pub async fn exec_raw(&self, sql: &str) -> Result<u64, String> {
        let sql = AssertSqlSafe(sql.to_string());
        match &self.backend {
            Backend::Postgres { pool, .. } => sqlx::raw_sql(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Backend::Sqlite { pool, .. } => sqlx::raw_sql(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .map_err(|e| e.to_string())
    }

    /// Changes the value of `"i"` in the stored payload at `position` to 999999, going around the
    /// append-only triggers the way an attacker with database access would.
    pub async fn tamper_payload(&self, position: i64) {
        let changed = match &self.backend {
            Backend::Postgres { pool, .. } => {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("SET LOCAL session_replication_role = replica")
                    .execute(&mut *tx)
                    .await
                    .expect("disable triggers (needs a superuser)");
                let done = sqlx::query(
                    "UPDATE events SET payload = jsonb_set(payload, '{i}', '999999') WHERE position = $1",
                )
                .bind(position)
                .execute(&mut *tx)
                .await
                .expect("tamper with the payload");
                tx.commit().await.expect("commit");
                done.rows_affected()
            }
            Backend::Sqlite { pool, .. } => {
                sqlx::query("DROP TRIGGER IF EXISTS events_no_update")
                    .execute(pool)
                    .await
                    .expect("drop the trigger");
                sqlx::query("UPDATE events SET payload = json_set(payload, '$.i', 999999) WHERE position = ?1")
                    .bind(position)
                    .execute(pool)
                    .await
                    .expect("tamper with the payload")
                    .rows_affected()
            }
        };
        assert_eq!(changed, 1, "tampering must change exactly one row");
    }

    /// Removes one event behind the triggers' back, as an attacker with database access would.
    pub async fn delete_event(&self, position: i64) {
        let deleted = match &self.backend {
            Backend::Postgres { pool, .. } => {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query("SET LOCAL session_replication_role = replica")
                    .execute(&mut *tx)
                    .await
                    .expect("disable triggers (needs a superuser)");
                let done = sqlx::query("DELETE FROM events WHERE position = $1")
                    .bind(position)
                    .execute(&mut *tx)
                    .await
                    .expect("delete the event");
                tx.commit().await.expect("commit");
                done.rows_affected()
            }
            Backend::Sqlite { pool, .. } => {
                sqlx::query("DROP TRIGGER IF EXISTS events_no_delete")
                    .execute(pool)
                    .await
                    .expect("drop the trigger");
                sqlx::query("DELETE FROM events WHERE position = ?1")
                    .bind(position)
                    .execute(pool)
                    .await
                    .expect("delete the event")
                    .rows_affected()
            }
        };
        assert_eq!(deleted, 1, "exactly one event deleted");
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: one database per test

const START_POSTGRES: &str =
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

fn admin_options() -> PgConnectOptions {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    PgConnectOptions::from_str(&url).unwrap_or_else(|e| panic!("DATABASE_URL {url:?}: {e}"))
}

async fn create_database() -> (PgConnectOptions, DropDatabase) {
    let admin = admin_options();
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {}:{} ({e}); {START_POSTGRES}",
                admin.get_host(),
                admin.get_port()
            )
        });
    let name = format!("kb_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    let options = admin.clone().database(&name);
    (options, DropDatabase { name })
}

async fn pg_pool(options: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .unwrap_or_else(|e| panic!("connect to the test database: {e}; {START_POSTGRES}"))
}

/// Drops the test database, connections and all, from a thread with its own runtime (a `Drop`
/// cannot await, and may run while the test's runtime is unwinding).
struct DropDatabase {
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let admin = admin_options();
        let name = self.name.clone();
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = PgConnection::connect_with(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok(())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the thread panicked",
                self.name
            ),
        }
    }
}

/// Removes the SQLite test directory.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Builders

/// A fixed business time with nanoseconds (the stores keep microseconds).
pub fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600, 123_456_789)
        .single()
        .expect("valid time")
}

/// A stream id no other test uses: `<category>-<uuid>`.
pub fn stream(category: &str) -> StreamId {
    StreamId::new(format!("{category}-{}", uuid::Uuid::new_v4().simple())).expect("valid stream id")
}

/// A version-1 `ThingHappened` event carrying `i`.
pub fn event(i: i64) -> NewEvent {
    NewEvent::new(
        "ThingHappened",
        json!({ "i": i, "note": "something happened" }),
        t0(),
    )
}

/// A request of `n` events numbered from 1.
pub fn req(stream: &StreamId, expected: ExpectedVersion, n: usize) -> AppendRequest {
    AppendRequest::new(
        stream.clone(),
        expected,
        (1..=n as i64).map(event).collect(),
    )
}

/// A small deterministic generator (xorshift64*), so a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % (hi - lo + 1)
    }
}
