//! The `billing` binary as an operator uses it.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::TempDir;

fn billing(dir: &TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_billing"))
        .args(args)
        .env("BILLING_DATA_DIR", dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run billing")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn keys_create_prints_only_the_key_and_list_and_revoke_work() {
    let dir = TempDir::new();
    let created = billing(&dir, &["keys", "create", "--scope", "read"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let out = stdout(&created);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "only the key on stdout: {out:?}");
    assert!(
        lines[0].starts_with("kb_") && lines[0].len() == 67,
        "{out:?}"
    );

    let listed = stdout(&billing(&dir, &["keys", "list"]));
    assert_eq!(listed.lines().count(), 1);
    assert!(
        listed.contains("\tread\t") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(lines[0]), "secrets are never listed");
    let id = listed.split('\t').next().unwrap().to_string();

    assert!(billing(&dir, &["keys", "revoke", &id]).status.success());
    assert!(stdout(&billing(&dir, &["keys", "list"])).contains("revoked"));
    let again = billing(&dir, &["keys", "revoke", &id]);
    assert!(!again.status.success(), "revoking twice is an error");

    let bad = billing(&dir, &["keys", "create", "--scope", "root"]);
    assert!(!bad.status.success());
}

#[test]
fn audit_verify_passes_then_names_a_tampered_position() {
    let dir = TempDir::new();
    // A few events through the real binary.
    let bench = billing(
        &dir,
        &["bench", "append", "--seconds", "1", "--concurrency", "4"],
    );
    assert!(bench.status.success(), "{}", stderr(&bench));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&bench).trim()).expect("one JSON line");
    let events = report["events"].as_i64().unwrap();
    assert!(events >= 3, "{report}");
    for field in ["events_per_sec", "p50_ms", "p99_ms", "batch_mean"] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field} in {report}");
    }

    let ok = billing(&dir, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let report: serde_json::Value = serde_json::from_str(stdout(&ok).trim()).unwrap();
    assert_eq!(report["checked"].as_i64(), Some(events));
    assert!(report["first_break"].is_null());

    // An attacker with file access: drop the trigger and change one byte of position 2.
    let db = dir.path().join("billing.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("DROP TRIGGER events_no_update")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE events SET payload = replace(payload, '1000', '1001') WHERE position = 2",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });
    let broken = billing(&dir, &["audit", "verify"]);
    assert!(!broken.status.success());
    assert!(
        stderr(&broken).contains("chain broken at position 2"),
        "{}",
        stderr(&broken)
    );
    let from_three = billing(&dir, &["audit", "verify", "--from", "3"]);
    assert!(
        from_three.status.success(),
        "from 3 trusts position 2's stored hash"
    );
}

#[tokio::test]
async fn first_start_prints_an_admin_key_once_and_serves_with_it() {
    let dir = TempDir::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let start = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_billing"))
            .env("BILLING_DATA_DIR", dir.path())
            .env_remove("NATS_URL")
            .env("BILLING_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start billing")
    };
    let mut first = start();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let notice = lines.next_line().await.unwrap().unwrap();
    assert!(notice.contains("admin key"), "{notice}");
    let key = lines.next_line().await.unwrap().unwrap();
    assert!(key.starts_with("kb_"));

    let client = crate::support::http_client(None);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(health_status(&client, &base).await, Some(200));
    let charged = client
        .post(format!("{base}/payment/process"))
        .bearer_auth(&key)
        .body(r#"{"amount":1000,"currency":"usd"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(charged.status(), 200);
    first.kill().await.unwrap();
    let _ = first.wait().await;

    // Second start: a key exists, nothing is printed (the key is printed before the server
    // listens, so once it answers, anything printed is already in the pipe).
    let mut second = start();
    let mut out = BufReader::new(second.stdout.take().unwrap()).lines();
    assert_eq!(health_status(&client, &base).await, Some(200));
    let printed = tokio::time::timeout(Duration::from_millis(300), out.next_line()).await;
    assert!(
        !matches!(printed, Ok(Ok(Some(_)))),
        "no key printed on a second start: {printed:?}"
    );
    second.kill().await.unwrap();
}

/// `/health`'s status once the server answers (polling for up to 10 s).
async fn health_status(client: &reqwest::Client, base: &str) -> Option<u16> {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            return Some(r.status().as_u16());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[test]
fn bench_clock_advances_a_year_of_renewals_and_reports_it() {
    let dir = TempDir::new();
    let out = billing(&dir, &["bench", "clock"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&out).trim()).expect("one JSON line");
    assert_eq!(report["renewals"], 12);
    // Each renewal: renewed, drafted, number, finalized, attempted, charge requested and
    // succeeded, paid — at least 8 events; plus the clock's advance.
    assert!(report["events"].as_i64().unwrap() > 12 * 8, "{report}");
    assert!(report["seconds"].as_f64().unwrap() > 0.0);
}
