//! Crash-safe charging with the real `billing` binary (issue 3, item 5): the process dies between
//! the gateway's answer and the outcome's append; on the next start the recovery task calls the
//! gateway again with the same idempotency key and records the outcome. One gateway charge, one
//! outcome event.
//!
//! The sandbox gateway keeps its book in a file (`BILLING_SANDBOX_STATE`), standing in for a real
//! gateway's memory, which outlives our process. `BILLING_CRASH_AFTER_GATEWAY_CHARGE=1` makes the
//! first process exit (status 137, no graceful shutdown) right after the gateway charged.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gateways::SandboxGateway;
use ledger::store::postgres::PgStore;
use ledger::store::sqlite::SqliteStore;
use ledger::store::{AnyStore, EventStore, read_page};
use ledger::{Position, RecordedEvent};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Kind, TempDir, TestDb};

const BODY: &str = r#"{"amount":1000,"currency":"usd","payment_method":"tok_visa"}"#;
const IDEMPOTENCY_KEY: &str = "crash-test-order-1";
/// How long the restarted server may take to complete the charge once it answers.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_charge_cut_off_by_a_crash_is_completed_once_after_restart() {
    crash_then_recover(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_charge_cut_off_by_a_crash_is_completed_once_after_restart() {
    crash_then_recover(Kind::Postgres).await;
}

async fn crash_then_recover(kind: Kind) {
    let dir = TempDir::new();
    let db = match kind {
        Kind::Sqlite => None,
        Kind::Postgres => Some(TestDb::create().await),
    };
    let sandbox_file = dir.path().join("sandbox-gateway.json");
    let server = Server {
        data_dir: dir.path().to_path_buf(),
        database_url: db.as_ref().map(|d| d.url.clone()),
        env: vec![(
            "BILLING_SANDBOX_STATE".into(),
            sandbox_file.display().to_string(),
        )],
    };
    let client = crate::support::http_client(Some(Duration::from_secs(30)));

    // 1. First start, set to crash after the gateway's answer.
    let port = free_port();
    let mut first = server.start(port, true);
    let mut stdout = BufReader::new(first.stdout.take().unwrap()).lines();
    let notice = next_line(&mut stdout).await;
    assert!(notice.contains("admin key"), "{notice}");
    let admin_key = next_line(&mut stdout).await;
    assert!(admin_key.starts_with("kb_"), "{admin_key}");
    let base = format!("http://127.0.0.1:{port}");
    wait_until_serving(&client, &base, &mut first).await;

    let crashed = pay(&client, &base, &admin_key).await;
    assert!(
        crashed.is_err(),
        "the process died before answering: {crashed:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), first.wait())
        .await
        .expect("the process exits")
        .unwrap();
    assert_eq!(status.code(), Some(137), "exited by the crash hook");
    drop(stdout);

    // The gateway charged; the log has the request and no outcome.
    let gateway = SandboxGateway::with_state_file(&sandbox_file).unwrap();
    assert_eq!((gateway.charges_made(), gateway.calls()), (1, 1));
    let store = open_store(kind, &server).await;
    let events = charge_events(&store).await;
    assert_eq!(types(&events), ["ChargeRequested"], "{events:#?}");
    let stream = events[0].stream_id.clone();
    let charge_id = events[0].payload["charge_id"]
        .as_str()
        .expect("charge_id")
        .to_string();

    // 2. Restart without the crash, recovering every second with no grace.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = server.start(port, false);
    wait_until_serving(&client, &base, &mut second).await;
    let deadline = Instant::now() + RECOVERY_DEADLINE;
    let events = loop {
        let events: Vec<_> = charge_events(&store)
            .await
            .into_iter()
            .filter(|e| e.stream_id == stream)
            .collect();
        if events.len() > 1 {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "no outcome recorded within {RECOVERY_DEADLINE:?}: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(types(&events), ["ChargeRequested", "ChargeSucceeded"]);
    assert_eq!(
        events[1].metadata.actor.as_deref(),
        Some("recovery"),
        "recorded by the recovery task"
    );
    // Called again with the same key: answered from the gateway's record, nothing charged.
    let gateway = SandboxGateway::with_state_file(&sandbox_file).unwrap();
    assert_eq!((gateway.charges_made(), gateway.calls()), (1, 2));

    // 3. The client's retry gets the charge, recorded once, charged once.
    let retried = pay(&client, &base, &admin_key)
        .await
        .expect("retry answered");
    assert_eq!(retried.status(), 200);
    let body: serde_json::Value = retried.json().await.unwrap();
    assert_eq!(body["id"], charge_id.as_str(), "{body}");
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(body["amount"], 1000, "{body}");
    let all = charge_events(&store).await;
    assert_eq!(
        types(&all),
        ["ChargeRequested", "ChargeSucceeded"],
        "one charge, one outcome: {all:#?}"
    );
    let gateway = SandboxGateway::with_state_file(&sandbox_file).unwrap();
    assert_eq!((gateway.charges_made(), gateway.calls()), (1, 2));

    second.kill().await.unwrap();
    drop(store);
}

/// How to start `billing serve` on this test's store, with `env` for the gateway.
pub(crate) struct Server {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub env: Vec<(String, String)>,
}

impl Server {
    /// `crash_after_gateway_charge`: the process exits right after the gateway's answer; else
    /// recovery runs every second with no grace.
    pub fn start(&self, port: u16, crash_after_gateway_charge: bool) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_billing"));
        command
            .arg("serve")
            .env("BILLING_ADDR", format!("127.0.0.1:{port}"))
            .env("BILLING_DATA_DIR", &self.data_dir)
            .env_remove("STRIPE_SECRET_KEY")
            .env_remove("STRIPE_API_BASE")
            .env_remove("BILLING_SANDBOX_STATE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("BILLING_MASTER_KEY")
            // No relay to the shared NATS server: each test has its own store.
            .env_remove("NATS_URL")
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        match &self.database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        if crash_after_gateway_charge {
            command
                .env("BILLING_CRASH_AFTER_GATEWAY_CHARGE", "1")
                .env_remove("BILLING_RECOVERY_INTERVAL_S")
                .env_remove("BILLING_RECOVERY_GRACE_S");
        } else {
            command
                .env_remove("BILLING_CRASH_AFTER_GATEWAY_CHARGE")
                .env("BILLING_RECOVERY_INTERVAL_S", "1")
                .env("BILLING_RECOVERY_GRACE_S", "0");
        }
        command.spawn().expect("start billing serve")
    }
}

/// The store the servers use, opened from the test (for reading only).
pub(crate) async fn open_store(kind: Kind, server: &Server) -> AnyStore {
    match (kind, &server.database_url) {
        (Kind::Postgres, Some(url)) => AnyStore::Postgres(PgStore::connect(url, 2).await.unwrap()),
        _ => AnyStore::Sqlite(SqliteStore::open(&server.data_dir).await.unwrap()),
    }
}

pub(crate) async fn charge_events(store: &AnyStore) -> Vec<RecordedEvent> {
    let events: std::sync::Arc<dyn EventStore> = store.events();
    read_page(events.as_ref(), Position(0), 10_000)
        .await
        .expect("read the log")
        .into_iter()
        .filter(|e| e.stream_id.category() == "charge")
        .collect()
}

pub(crate) fn types(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

async fn pay(
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    client
        .post(format!("{base}/payment/process"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .header("idempotency-key", IDEMPOTENCY_KEY)
        .body(BODY)
        .send()
        .await
}

pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub(crate) async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> String {
    tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("a line on stdout within 60 s")
        .expect("read stdout")
        .expect("stdout open")
}

/// Polls `/health` until it answers 200 (at most 60 s), failing early if the process exited.
pub(crate) async fn wait_until_serving(client: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status() == 200
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("billing serve exited before serving: {status}");
        }
        assert!(Instant::now() < deadline, "billing serve did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
