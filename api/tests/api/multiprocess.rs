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
