//! `spawn_app()`: a fresh store, the real router on a random port, keys of each scope.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use api::state::AppState;
use chrono::Utc;
use gateways::{
    ChargeOutcome, ChargeRequest, Gateway, GatewayError, RefundOutcome, RefundRequest,
    SandboxGateway,
};
use ledger::access::{Scope, create_key};
use ledger::store::postgres::PgStore;
use ledger::store::sqlite::SqliteStore;
use ledger::store::{AnyStore, EventStore, WriterConfig};
use ledger::upcast::Upcasters;
use ledger::{Position, RecordedEvent};
use sqlx::{AssertSqlSafe, Connection};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Semaphore;

/// The Stripe webhook secrets of a test app: the current one and the one being rotated out.
pub const WEBHOOK_SECRETS: [&str; 2] = ["whsec_test_current", "whsec_test_previous"];

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_string())
}

/// A database of its own on the test server, dropped afterwards.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin_url = database_url();
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin_url} ({e}); start it with: \
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                )
            });
        let name = format!("kb_api_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        TestDb {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&database_url()).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}

/// A temporary directory, removed afterwards.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("kb-api-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A running server.
pub struct TestApp {
    pub base: String,
    charges: Arc<commands::charge::ChargeService>,
    pub customers: commands::customer::CustomerService,
    pub billing: commands::billing::Billing,
    keys: Arc<dyn ledger::access::KeyStore>,
    pub client: reqwest::Client,
    pub store: Arc<dyn EventStore>,
    pub sandbox: Arc<TestGateway>,
    /// The webhook reactor (tests run its background pass by hand).
    pub reactor: Arc<commands::reactor::Reactor>,
    pub admin_key: String,
    pub write_key: String,
    pub read_key: String,
    _db: Option<TestDb>,
    _dir: Option<TempDir>,
}

/// The sandbox gateway with two switches a test can throw: `down` (every call times out before
/// reaching the sandbox) and `hold` (calls wait until `release`).
pub struct TestGateway {
    inner: SandboxGateway,
    pub down: AtomicBool,
    held: AtomicBool,
    gate: Semaphore,
    calls: AtomicUsize,
}

impl Default for TestGateway {
    fn default() -> Self {
        TestGateway {
            inner: SandboxGateway::new(),
            down: AtomicBool::new(false),
            held: AtomicBool::new(false),
            gate: Semaphore::new(0),
            calls: AtomicUsize::new(0),
        }
    }
}

impl TestGateway {
    /// Charges actually made at the sandbox.
    pub fn charges_made(&self) -> usize {
        self.inner.charges_made()
    }

    /// Refunded at the sandbox for one of its charges.
    pub fn refunded_minor(&self, gateway_charge_id: &str) -> Option<i64> {
        self.inner.refunded_minor(gateway_charge_id)
    }

    /// Charge calls received (including those that timed out here).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        self.gate.add_permits(1_000);
    }
}

#[async_trait::async_trait]
impl Gateway for TestGateway {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn charge(&self, req: ChargeRequest) -> Result<ChargeOutcome, GatewayError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.held.load(Ordering::SeqCst) {
            let _ = self.gate.acquire().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(GatewayError::Timeout);
        }
        self.inner.charge(req).await
    }

    async fn refund(&self, req: RefundRequest) -> Result<RefundOutcome, GatewayError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(GatewayError::Timeout);
        }
        self.inner.refund(req).await
    }
}

pub async fn spawn_app(kind: Kind) -> TestApp {
    spawn_app_with(kind, Arc::new(TestGateway::default())).await
}

pub async fn spawn_app_with(kind: Kind, sandbox: Arc<TestGateway>) -> TestApp {
    spawn_app_opts(kind, sandbox, true).await
}

/// `workers: false`: no projection worker runs (`billing serve --no-workers`), so the read
/// models stay where they are.
pub async fn spawn_app_opts(kind: Kind, sandbox: Arc<TestGateway>, workers: bool) -> TestApp {
    let gateways = gateways::Gateways::new(sandbox.clone());
    spawn_app_gateways(kind, sandbox, gateways, workers, Box::new(|_| {})).await
}

/// The sandbox, with fraud screening under `rules`.
pub async fn spawn_app_fraud(
    kind: Kind,
    sandbox: Arc<TestGateway>,
    rules: commands::charge::fraud::FraudRules,
) -> TestApp {
    let gateways = gateways::Gateways::new(sandbox.clone());
    let configure = move |state: &mut AppState| {
        state.charges = Arc::new(state.charges.with_fraud_rules(rules));
    };
    spawn_app_gateways(kind, sandbox, gateways, true, Box::new(configure)).await
}

/// The PayPal webhook id the PayPal test apps are configured with.
pub const PAYPAL_WEBHOOK_ID: &str = "WH-ID-5GF12391RB8493234";

/// Charging through PayPal (the stand-in at `paypal`), its webhooks verified there.
pub async fn spawn_app_paypal(kind: Kind, paypal: &gateways::stand_in::PaypalStandIn) -> TestApp {
    let client = Arc::new(
        gateways::paypal::PaypalGateway::new(gateways::paypal::PaypalConfig {
            client_id: "standin-client".into(),
            client_secret: "standin-secret".into(),
            api_base: paypal.base_url().into(),
            timeout: std::time::Duration::from_secs(10),
        })
        .expect("paypal client"),
    );
    let gateways = gateways::Gateways::new(client.clone());
    let configure = move |state: &mut AppState| {
        state.paypal = Some(client);
        state.paypal_webhook_id = Some(PAYPAL_WEBHOOK_ID.into());
    };
    spawn_app_gateways(
        kind,
        Arc::new(TestGateway::default()),
        gateways,
        true,
        Box::new(configure),
    )
    .await
}

/// Charging through Stripe (the stand-in at `stripe`) instead of the sandbox.
pub async fn spawn_app_stripe(kind: Kind, stripe: &gateways::stand_in::StripeStandIn) -> TestApp {
    spawn_app_stripe_with(kind, stripe, Box::new(|_| {})).await
}

/// Charging through Stripe (the stand-in at `stripe`), the app configured further by `configure`.
pub async fn spawn_app_stripe_with(
    kind: Kind,
    stripe: &gateways::stand_in::StripeStandIn,
    configure: Box<dyn FnOnce(&mut AppState) + Send>,
) -> TestApp {
    let client = gateways::stripe::StripeGateway::new(gateways::stripe::StripeConfig {
        secret_key: "sk_test_standin".into(),
        api_base: stripe.base_url().into(),
        timeout: std::time::Duration::from_secs(10),
    })
    .expect("stripe client");
    let gateways = gateways::Gateways::new(Arc::new(client));
    spawn_app_gateways(
        kind,
        Arc::new(TestGateway::default()),
        gateways,
        true,
        configure,
    )
    .await
}

pub(crate) async fn spawn_app_gateways(
    kind: Kind,
    sandbox: Arc<TestGateway>,
    gateways: gateways::Gateways,
    workers: bool,
    configure: Box<dyn FnOnce(&mut AppState) + Send>,
) -> TestApp {
    let (store, db, dir) = match kind {
        Kind::Sqlite => {
            let dir = TempDir::new();
            let s = SqliteStore::open_file(
                &dir.path().join("billing.db"),
                WriterConfig::default(),
                Upcasters::new(),
            )
            .await
            .expect("open sqlite");
            (AnyStore::Sqlite(s), None, Some(dir))
        }
        Kind::Postgres => {
            let db = TestDb::create().await;
            let s = PgStore::connect(&db.url, 8)
                .await
                .expect("connect postgres");
            (AnyStore::Postgres(s), Some(db), None)
        }
    };
    store.migrate().await.expect("migrate");
    // The read side, as `billing serve` runs it without NATS: the in-process feed.
    let read = projections::store::ReadStore::live(&store);
    let all = projections::all();
    let refs: Vec<&dyn projections::projection::Projection> =
        all.iter().map(|p| p.as_ref()).collect();
    read.ensure(&refs).await.expect("read-model tables");
    if workers {
        tokio::spawn(projections::worker::local::LocalFeed::new(read, store.events(), all).run());
    }
    let mut state = AppState::new(
        &store,
        gateways,
        ledger::vault::Key::generate().expect("master key"),
    );
    state.stripe_webhook_secrets =
        Arc::new(WEBHOOK_SECRETS.iter().map(|s| (*s).to_string()).collect());
    configure(&mut state);
    let charges = state.charges.clone();
    let reactor = state.reactor.clone();
    let customers = state.customers.clone();
    let billing = state.billing.clone();
    let mut keys = Vec::new();
    for scope in [Scope::Admin, Scope::Write, Scope::Read] {
        let (_, secret) = create_key(store.keys().as_ref(), scope, Utc::now())
            .await
            .expect("create key");
        keys.push(secret.expose().to_string());
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, api::http::router(state)).await;
    });
    TestApp {
        base: format!("http://{addr}"),
        charges,
        customers,
        billing,
        keys: store.keys(),
        client: http_client(None),
        store: store.events(),
        sandbox,
        reactor,
        read_key: keys.pop().unwrap_or_default(),
        write_key: keys.pop().unwrap_or_default(),
        admin_key: keys.pop().unwrap_or_default(),
        _db: db,
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST a raw body with the write key (and an optional Idempotency-Key).
    pub async fn post(
        &self,
        path: &str,
        body: &str,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.write_key)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        req.send().await.expect("request")
    }

    /// DELETE with the write key (and an optional Idempotency-Key).
    pub async fn delete(&self, path: &str, idempotency_key: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .delete(self.url(path))
            .bearer_auth(&self.write_key);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        req.send().await.expect("request")
    }

    /// GET with the read key, expect 200, answer the JSON object.
    pub async fn get_ok(&self, path: &str) -> serde_json::Value {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.read_key)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// POST a body, expect 200, answer the JSON object.
    pub async fn post_ok(&self, path: &str, body: &str) -> serde_json::Value {
        let response = self.post(path, body, None).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status, 200, "POST {path} {body}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    /// The server's charge service (for what runs beside HTTP, like recovery).
    pub fn charge_service(&self) -> Arc<commands::charge::ChargeService> {
        self.charges.clone()
    }

    /// The app's key store (to create and revoke keys behind the API's back, as the CLI does).
    pub fn keys(&self) -> Arc<dyn ledger::access::KeyStore> {
        self.keys.clone()
    }

    /// The PostgreSQL URL of this app's database (None on SQLite).
    pub fn db_url(&self) -> Option<&str> {
        self._db.as_ref().map(|d| d.url.as_str())
    }

    pub async fn head(&self) -> Position {
        self.store.head().await.expect("head").position
    }

    pub async fn all_events(&self) -> Vec<RecordedEvent> {
        ledger::store::read_page(self.store.as_ref(), Position(0), 10_000)
            .await
            .expect("read log")
    }

    /// The books balance: the trial balance at the current head (the journal having applied
    /// it) is zero in every currency — debits equal credits, `balanced` is true, and the
    /// accounts' balances sum to 0. Answers the trial balance for more asserts (see
    /// [`account_balance`]).
    pub async fn assert_books_balance(&self) -> serde_json::Value {
        let head = self.head().await.0;
        let tb = self
            .get_ok(&format!("/v1/ledger/trial_balance?min_position={head}"))
            .await;
        assert_eq!(tb["object"], "trial_balance", "{tb}");
        let currencies = tb["currencies"]
            .as_array()
            .unwrap_or_else(|| panic!("currencies in {tb}"));
        for c in currencies {
            let currency = c["currency"].as_str().unwrap_or_default();
            let amount = |k: &str| {
                c[k].as_i64()
                    .unwrap_or_else(|| panic!("{currency}: {k} in {c}"))
            };
            assert_eq!(
                amount("debits"),
                amount("credits"),
                "{currency}: debits and credits differ at position {head}: {c}"
            );
            assert_eq!(
                c["balanced"], true,
                "{currency}: not balanced at position {head}: {c}"
            );
            let sum: i64 = c["accounts"]
                .as_array()
                .unwrap_or_else(|| panic!("{currency}: accounts in {c}"))
                .iter()
                .map(|a| {
                    a["balance"]
                        .as_i64()
                        .unwrap_or_else(|| panic!("{currency}: balance in {a}"))
                })
                .sum();
            assert_eq!(
                sum, 0,
                "{currency}: the accounts' balances sum to {sum} at position {head}: {c}"
            );
        }
        tb
    }
}

/// The balance (`debit − credit`) of `account` in `currency` in a trial balance answer; 0 when
/// the journal has no line for it.
/// An HTTP client for the tests (reqwest's rustls needs the process's crypto provider first).
pub fn http_client(timeout: Option<std::time::Duration>) -> reqwest::Client {
    gateways::tls::install_crypto_provider();
    let builder = reqwest::Client::builder();
    let builder = match timeout {
        Some(t) => builder.timeout(t),
        None => builder,
    };
    builder.build().expect("http client")
}

pub fn account_balance(tb: &serde_json::Value, currency: &str, account: &str) -> i64 {
    tb["currencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["currency"] == currency)
        .flat_map(|c| c["accounts"].as_array().into_iter().flatten())
        .filter(|a| a["account"] == account)
        .map(|a| a["balance"].as_i64().unwrap_or_default())
        .sum()
}

/// The error object's `type` and `code`.
pub async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    let e = &body["error"];
    (
        status,
        e["type"].as_str().unwrap_or_default().to_string(),
        e["code"].as_str().unwrap_or_default().to_string(),
    )
}
