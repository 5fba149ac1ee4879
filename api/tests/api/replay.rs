//! `billing replay` and `billing books` against the database of a running server.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{Kind, TestApp, spawn_app};

/// Runs the binary off the test's runtime: the server under test lives on that runtime, and a
/// swap waits for the server's open batches to finish.
async fn billing(app: &TestApp, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billing"));
    command
        .args(args)
        .env("DATABASE_URL", app.db_url().expect("a PostgreSQL app"))
        .env_remove("NATS_URL")
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().expect("run billing"))
        .await
        .expect("the billing process")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn pay(app: &TestApp, amount: i64, currency: &str) -> Value {
    let body = json!({"amount": amount, "currency": currency, "payment_method": "tok_visa"});
    app.post_ok("/payment/process", &body.to_string()).await
}

async fn refund(app: &TestApp, charge: &Value, amount: i64) {
    let body = json!({"charge_id": charge["id"], "amount": amount});
    app.post_ok("/v1/refunds", &body.to_string()).await;
}

/// `(currency, account) → balance` of the live trial balance, once it has applied `head`.
async fn live_balances(app: &TestApp) -> BTreeMap<(String, String), i64> {
    let head = app.head().await.0;
    let tb = app
        .get_ok(&format!("/v1/ledger/trial_balance?min_position={head}"))
        .await;
    let mut out = BTreeMap::new();
    for c in tb["currencies"].as_array().unwrap() {
        for a in c["accounts"].as_array().unwrap() {
            let key = (
                c["currency"].as_str().unwrap().to_string(),
                a["account"].as_str().unwrap().to_string(),
            );
            out.insert(key, a["balance"].as_i64().unwrap());
        }
    }
    out
}

fn book_balances(books: &Value) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for (currency, accounts) in books["currencies"].as_object().unwrap() {
        for (account, t) in accounts.as_object().unwrap() {
            out.insert(
                (currency.clone(), account.clone()),
                t["balance"].as_i64().unwrap(),
            );
        }
    }
    out
}

#[tokio::test]
async fn books_as_of_a_moment_equal_the_live_books_then_and_replay_rebuilds_the_same_models() {
    let app = spawn_app(Kind::Postgres).await;
    let first = pay(&app, 2500, "usd").await;
    pay(&app, 900, "jpy").await;
    refund(&app, &first, 500).await;
    let then = live_balances(&app).await;
    let moment = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let later = pay(&app, 4000, "usd").await;
    refund(&app, &later, 4000).await;
    let now = live_balances(&app).await;
    assert_ne!(then, now);

    // The books of that moment, from the log alone, are the live books captured then.
    let at = moment.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let out = billing(&app, &["books", "--as-of", &at, "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let books: Value = serde_json::from_slice(&out.stdout).expect("books JSON");
    assert_eq!(book_balances(&books), then);
    let table = billing(&app, &["books", "--as-of", &at]).await;
    assert!(
        text(&table.stdout).contains("cash:sandbox"),
        "{}",
        text(&table.stdout)
    );
    assert!(
        text(&table.stdout).contains("20.00 USD"),
        "{}",
        text(&table.stdout)
    );

    // A full replay rebuilds what the live workers built, and swaps it in.
    let head = app.head().await.0;
    let charges_before = app
        .get_ok(&format!("/v1/charges?limit=100&min_position={head}"))
        .await;
    let out = billing(&app, &["replay"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("events/s") && said.contains("swapped in"),
        "{said}"
    );
    let charges_after = app
        .get_ok(&format!("/v1/charges?limit=100&min_position={head}"))
        .await;
    assert_eq!(charges_after, charges_before);
    assert_eq!(live_balances(&app).await, now);

    // One projection, up to a position: kept aside, the live models untouched.
    let out = billing(
        &app,
        &["replay", "--projection", "journal", "--to-position", "3"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("not swapped in"));
    assert_eq!(live_balances(&app).await, now);

    let out = billing(&app, &["replay", "--projection", "nope"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("known: customers"),
        "{}",
        text(&out.stderr)
    );
    let out = billing(&app, &["books", "--as-of", "yesterday"]).await;
    assert!(!out.status.success());
}
