//! The classic skipped-event race of PostgreSQL event stores, with real writer processes.
//!
//! Three `billing bench append` processes append concurrently to one database while this test
//! tails the log by position. With positions taken from a sequence, a transaction that got a
//! lower number but commits later is skipped by a reader that has already moved past it. Here
//! positions are assigned under the ledger head row lock, so the reader must see every position
//! exactly once, in order.

use std::process::Stdio;
use std::time::Duration;

use ledger::Position;
use ledger::store::postgres::PgStore;
use ledger::store::{EventStore, verify_chain};

use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailing_reader_never_skips_with_writers_in_three_processes() {
    let db = TestDb::create().await;
    let store = PgStore::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();

    let writers: Vec<_> = (0..3)
        .map(|_| {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_billing"))
                .args(["bench", "append", "--seconds", "3", "--concurrency", "16"])
                .env("DATABASE_URL", &db.url)
                .env_remove("NATS_URL")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("start a writer process")
        })
        .collect();

    let mut checkpoint = Position(0);
    let mut seen = 0u64;
    let mut writers_done = false;
    let mut outputs = Vec::new();
    let mut writers = Some(writers);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "reader did not finish"
        );
        let page = store.read_page_raw(checkpoint, 500).await.unwrap();
        for event in &page {
            assert_eq!(
                event.position,
                checkpoint.next(),
                "skipped or doubled position"
            );
            checkpoint = event.position;
            seen += 1;
        }
        if page.is_empty() {
            if writers_done {
                break;
            }
            if let Some(ws) = writers.take() {
                let mut still = Vec::new();
                for mut w in ws {
                    match w.try_wait().unwrap() {
                        Some(_) => outputs.push(w.wait_with_output().await.unwrap()),
                        None => still.push(w),
                    }
                }
                if still.is_empty() {
                    writers_done = true;
                } else {
                    writers = Some(still);
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    let mut appended = 0u64;
    for o in &outputs {
        assert!(o.status.success());
        let line: serde_json::Value = serde_json::from_slice(&o.stdout).expect("bench JSON");
        assert_eq!(line["failures"], 0);
        appended += line["events"].as_u64().unwrap();
    }
    assert_eq!(outputs.len(), 3);
    assert!(
        appended > 300,
        "the writers appended concurrently ({appended})"
    );
    assert_eq!(seen, appended, "the reader saw every appended event once");
    assert_eq!(store.head().await.unwrap().position, checkpoint);
    let report = verify_chain(&store, Position(1)).await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.checked, appended);
}

/// A free port on the loopback interface.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The production topology: `billing serve --no-workers` takes commands, `billing worker` (relay
/// and JetStream workers, no HTTP) builds the read models, on one PostgreSQL database and NATS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_builds_the_read_models_a_serving_process_answers_from() {
    let db = TestDb::create().await;
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let stream = format!("TEST_TOPOLOGY_{unique}");
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let dir = crate::support::TempDir::new();
    let port = free_port();
    let command = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_billing"));
        c.args(args)
            .env("DATABASE_URL", &db.url)
            .env("NATS_URL", &nats_url)
            .env("BILLING_NATS_STREAM", &stream)
            .env(
                "BILLING_NATS_SUBJECT_PREFIX",
                format!("test.{unique}.events"),
            )
            .env("BILLING_DATA_DIR", dir.path())
            .env("BILLING_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        c
    };
    let key = command(&["keys", "create", "--scope", "write"])
        .output()
        .await
        .expect("billing keys create");
    let key = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let _worker = command(&["worker"]).spawn().expect("billing worker");
    let _server = command(&["serve", "--no-workers"])
        .spawn()
        .expect("billing serve");
    let client = crate::support::http_client(None);
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut head = 0;
    for amount in [500, 700] {
        let r = client
            .post(format!("{base}/payment/process"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"amount":{amount},"currency":"eur","payment_method":"tok_visa"}}"#
            ))
            .send()
            .await
            .expect("charge");
        assert_eq!(r.status(), 200);
        head = r.headers()["billing-position"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
    }
    // The serving process runs no worker: the read models move only through the worker
    // process, fed by JetStream.
    let tb: serde_json::Value = client
        .get(format!(
            "{base}/v1/ledger/trial_balance?min_position={head}"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let eur = &tb["currencies"][0];
    assert_eq!(
        (eur["currency"].as_str(), eur["debits"].as_i64()),
        (Some("eur"), Some(1200)),
        "{tb}"
    );
    let ready: serde_json::Value = client
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["nats"], "connected");
    assert_eq!(ready["projections"]["journal"], head);

    let nats = async_nats::connect(&nats_url).await.expect("NATS");
    let _ = async_nats::jetstream::new(nats)
        .delete_stream(&stream)
        .await;
}
