//! Stores for the tests: a fresh SQLite file or a fresh PostgreSQL database each, and events of
//! the real domain types.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use commands::charge::refund::{RefundEvent, RefundRequested, RefundSucceeded};
use commands::charge::{ChargeEvent, ChargeFailed, ChargeRequested, ChargeSucceeded};
use commands::stored::to_new_event;
use ledger::event::{AppendRequest, ExpectedVersion, Metadata, StreamId};
use ledger::ids::{ChargeId, CustomerId, RefundId};
use ledger::money::Currency;
use ledger::store::postgres::PgStore;
use ledger::store::sqlite::SqliteStore;
use ledger::store::{AnyStore, EventStore, WriterConfig};
use ledger::upcast::Upcasters;
use projections::store::ReadStore;
use sqlx::{AssertSqlSafe, Connection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub const KINDS: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A store of either kind, removed when dropped.
pub struct TestStore {
    pub events: Arc<dyn EventStore>,
    pub read: ReadStore,
    dir: Option<PathBuf>,
    db: Option<String>,
}

impl TestStore {
    pub async fn open(kind: Kind) -> TestStore {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let (any, dir, db) = match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("kb-proj-{unique}"));
                std::fs::create_dir_all(&dir).expect("create the test directory");
                let s = SqliteStore::open_file(
                    &dir.join("billing.db"),
                    WriterConfig::default(),
                    Upcasters::new(),
                )
                .await
                .expect("open SQLite");
                (AnyStore::Sqlite(s), Some(dir), None)
            }
            Kind::Postgres => {
                let admin = database_url();
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL must run at {admin} (.ci/run starts it): {e}")
                    });
                let name = format!("kb_proj_{unique}");
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create the test database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                let s = PgStore::connect(&format!("{base}/{name}"), 8)
                    .await
                    .expect("connect PostgreSQL");
                (AnyStore::Postgres(s), None, Some(name))
            }
        };
        any.migrate().await.expect("migrate");
        TestStore {
            events: any.events(),
            read: ReadStore::live(&any),
            dir,
            db,
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(name) = self.db.take() {
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut c) = sqlx::PgConnection::connect(&database_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut c).await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
        + chrono::Duration::minutes(i64::from(minute))
}

async fn append(store: &dyn EventStore, id: ChargeId, events: &[ChargeEvent], when: DateTime<Utc>) {
    let stream = StreamId::of("charge", &id).unwrap();
    let new = events
        .iter()
        .map(|e| to_new_event(e, when, &Metadata::default()))
        .collect();
    store
        .append(AppendRequest::new(stream, ExpectedVersion::Any, new))
        .await
        .expect("append");
}

/// A charge of `amount` minor units of `currency`: requested, then succeeded (or failed).
pub async fn charge(
    store: &dyn EventStore,
    amount: i64,
    currency: &str,
    succeed: bool,
    when: DateTime<Utc>,
) -> ChargeId {
    let id = ChargeId::new();
    let requested = ChargeEvent::Requested(ChargeRequested {
        charge_id: id,
        amount,
        currency: Currency::parse(currency).unwrap(),
        customer_id: Some(CustomerId::new()),
        payment_method: "tok_visa".into(),
        description: None,
        gateway: "sandbox".into(),
        gateway_key: format!("charge-{id}"),
        gateway_customer: None,
        off_session: false,
        capture_later: false,
        request_fingerprint: None,
    });
    append(store, id, &[requested], when).await;
    let outcome = if succeed {
        ChargeEvent::Succeeded(ChargeSucceeded {
            charge_id: id,
            gateway_charge_id: format!("sb_{id}"),
        })
    } else {
        ChargeEvent::Failed(ChargeFailed {
            charge_id: id,
            gateway_charge_id: None,
            failure_code: "card_declined".into(),
            failure_message: "declined".into(),
        })
    };
    append(store, id, &[outcome], when).await;
    id
}

/// A refund of `amount` on `charge`, requested and succeeded.
pub async fn refund(store: &dyn EventStore, charge: ChargeId, amount: i64, when: DateTime<Utc>) {
    let id = RefundId::new();
    let events = [
        ChargeEvent::Refund(RefundEvent::Requested(RefundRequested {
            charge_id: charge,
            refund_id: id,
            amount,
            reason: None,
            gateway_key: format!("refund-{id}"),
            request_fingerprint: None,
        })),
        ChargeEvent::Refund(RefundEvent::Succeeded(RefundSucceeded {
            charge_id: charge,
            refund_id: id,
            gateway_refund_id: format!("sbr_{id}"),
        })),
    ];
    append(store, charge, &events, when).await;
}
