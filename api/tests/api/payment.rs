//! `POST /payment/process`: two-phase charging, bad input, idempotency.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Kind, TestApp, account_balance, error_of, spawn_app};

const CHARGE: &str = r#"{"amount":1000,"currency":"usd"}"#;

async fn succeeds_in_two_phases(kind: Kind) {
    let app = spawn_app(kind).await;
    let response = app.post("/payment/process", CHARGE, None).await;
    assert_eq!(response.status(), 200);
    let position: i64 = response.headers()["billing-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let charge: Value = response.json().await.unwrap();
    assert_eq!(charge["object"], "charge");
    assert_eq!(charge["amount"], 1000);
    assert_eq!(charge["currency"], "usd");
    assert_eq!(charge["status"], "succeeded");
    assert_eq!(charge["paid"], true);
    assert_eq!(charge["payment_method"], "tok_visa");
    assert!(charge["id"].as_str().unwrap().starts_with("ch_"));

    let events = app.all_events().await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["ChargeRequested", "ChargeSucceeded"]);
    assert_eq!(events[0].stream_id, events[1].stream_id);
    assert_eq!(
        events[0].stream_id.as_str(),
        format!("charge-{}", charge["id"].as_str().unwrap())
    );
    assert_eq!(events[0].payload["amount"], 1000);
    assert_eq!(
        events[1].payload["gateway_charge_id"],
        charge["gateway_charge_id"]
    );
    assert_eq!(
        position, events[1].position.0,
        "Billing-Position is the outcome's position"
    );
    assert_eq!(app.sandbox.charges_made(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
    assert_eq!(
        account_balance(&tb, "usd", "revenue"),
        -1000,
        "a one-off charge is revenue"
    );
}

#[tokio::test]
async fn charge_succeeds_in_two_phases_sqlite() {
    succeeds_in_two_phases(Kind::Sqlite).await;
}

#[tokio::test]
async fn charge_succeeds_in_two_phases_postgres() {
    succeeds_in_two_phases(Kind::Postgres).await;
}

#[tokio::test]
async fn a_decline_is_a_402_card_error_with_the_charge_recorded_as_failed() {
    let app = spawn_app(Kind::Sqlite).await;
    let body =
        r#"{"amount":500,"currency":"eur","payment_method":"tok_chargeDeclinedInsufficientFunds"}"#;
    let response = app.post("/payment/process", body, None).await;
    assert_eq!(response.status(), 402);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "card_error");
    assert_eq!(body["error"]["code"], "card_declined");
    assert_eq!(body["error"]["decline_code"], "insufficient_funds");
    let events = app.all_events().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event_type, "ChargeFailed");
    assert_eq!(events[1].payload["failure_code"], "insufficient_funds");
    assert_eq!(
        body["error"]["charge"].as_str().unwrap(),
        events[1].payload["charge_id"].as_str().unwrap()
    );
    assert_eq!(app.sandbox.charges_made(), 0);
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "eur", "cash:sandbox"),
        0,
        "a declined charge posts nothing"
    );
}

#[tokio::test]
async fn a_lost_gateway_response_is_retried_with_the_same_key_and_charges_once() {
    let app = spawn_app(Kind::Sqlite).await;
    let body = r#"{"amount":700,"currency":"usd","payment_method":"tok_timeoutAfterCharge"}"#;
    let response = app.post("/payment/process", body, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.sandbox.calls(), 2, "the timeout was retried");
    assert_eq!(app.sandbox.charges_made(), 1, "one charge at the gateway");
    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["ChargeRequested", "ChargeSucceeded"]);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 700);
}

#[tokio::test]
async fn an_unknown_outcome_leaves_a_pending_charge_and_answers_202() {
    let app = spawn_app(Kind::Sqlite).await;
    let body = r#"{"amount":700,"currency":"usd","payment_method":"tok_timeout"}"#;
    let response = app.post("/payment/process", body, None).await;
    assert_eq!(response.status(), 202);
    let charge: Value = response.json().await.unwrap();
    assert_eq!(charge["status"], "pending");
    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["ChargeRequested"], "no outcome is invented");
    assert_eq!(app.sandbox.charges_made(), 0);
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        0,
        "a pending charge posts nothing"
    );
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_appends_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let cases: &[(&str, u16, &str)] = &[
        ("{\"amount\":1000,", 400, "json_invalid"),
        ("", 400, "body_missing"),
        ("[1,2]", 400, "parameter_invalid"),
        (
            r#"{"amount":1000,"currency":"xyz"}"#,
            400,
            "currency_invalid",
        ),
        (
            r#"{"amount":1000,"currency":"USDX"}"#,
            400,
            "currency_invalid",
        ),
        (r#"{"amount":-1,"currency":"usd"}"#, 400, "amount_invalid"),
        (r#"{"amount":0,"currency":"usd"}"#, 400, "amount_invalid"),
        (
            r#"{"amount":100000000,"currency":"usd"}"#,
            400,
            "amount_invalid",
        ),
        (
            r#"{"amount":9223372036854775808,"currency":"usd"}"#,
            400,
            "parameter_invalid",
        ),
        (
            r#"{"amount":10.5,"currency":"usd"}"#,
            400,
            "parameter_invalid",
        ),
        (
            r#"{"amount":"1000","currency":"usd"}"#,
            400,
            "parameter_invalid",
        ),
        (r#"{"currency":"usd"}"#, 400, "parameter_invalid"),
        (
            r#"{"amount":1000,"currency":"usd","surprise":true}"#,
            400,
            "parameter_invalid",
        ),
        (
            r#"{"amount":1000,"currency":"usd","customer_id":"cus_nope"}"#,
            400,
            "parameter_invalid",
        ),
        (
            r#"{"amount":1000,"currency":"usd","payment_method":"4242 4242 4242 4242"}"#,
            400,
            "payment_method_invalid",
        ),
        (
            r#"{"amount":1000,"currency":"usd","description":"nul \u0000 here"}"#,
            400,
            "parameter_invalid",
        ),
    ];
    for (body, status, code) in cases {
        let (got_status, kind, got_code) =
            error_of(app.post("/payment/process", body, None).await).await;
        assert_eq!(
            (got_status, got_code.as_str()),
            (*status, *code),
            "body {body}"
        );
        assert_eq!(kind, "invalid_request_error", "body {body}");
    }
    let big = format!(
        r#"{{"amount":1000,"currency":"usd","description":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (status, _, code) = error_of(app.post("/payment/process", &big, None).await).await;
    assert_eq!((status, code.as_str()), (413, "body_too_large"));
    assert_eq!(app.head().await.0, 0, "nothing appended");
    assert_eq!(app.sandbox.calls(), 0, "the gateway was never called");
}

#[tokio::test]
async fn keys_are_required_and_scoped() {
    let app = spawn_app(Kind::Sqlite).await;
    let url = app.url("/payment/process");
    let no_key = app.client.post(&url).body(CHARGE).send().await.unwrap();
    assert_eq!(
        error_of(no_key).await,
        (401, "authentication_error".into(), "api_key_invalid".into())
    );
    let bad_key = app
        .client
        .post(&url)
        .bearer_auth("kb_not_a_key")
        .body(CHARGE)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(bad_key).await.0, 401);
    let basic = app
        .client
        .post(&url)
        .header("authorization", "Basic abc")
        .body(CHARGE)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(basic).await.0, 401);
    let read_only = app
        .client
        .post(&url)
        .bearer_auth(&app.read_key)
        .body(CHARGE)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(read_only).await,
        (403, "permission_error".into(), "insufficient_scope".into())
    );
    assert_eq!(app.head().await.0, 0);
    let admin = app
        .client
        .post(&url)
        .bearer_auth(&app.admin_key)
        .body(CHARGE)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200, "admin includes write");
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response() {
    let app = spawn_app(Kind::Sqlite).await;
    let first = app.post("/payment/process", CHARGE, Some("order-42")).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_position = first.headers()["billing-position"].clone();
    let first_body = first.text().await.unwrap();

    let second = app.post("/payment/process", CHARGE, Some("order-42")).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.headers()["billing-position"], first_position);
    assert_eq!(second.text().await.unwrap(), first_body);

    assert_eq!(app.sandbox.charges_made(), 1);
    assert_eq!(
        app.all_events().await.len(),
        2,
        "the replay appended nothing"
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        1000,
        "the replay posted nothing"
    );
}

#[tokio::test]
async fn a_declined_response_is_replayed_too() {
    let app = spawn_app(Kind::Sqlite).await;
    let body = r#"{"amount":500,"currency":"usd","payment_method":"tok_chargeDeclined"}"#;
    let first = app.post("/payment/process", body, Some("k-decline")).await;
    assert_eq!(first.status(), 402);
    let first_body = first.text().await.unwrap();
    let second = app.post("/payment/process", body, Some("k-decline")).await;
    assert_eq!(second.status(), 402);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.unwrap(), first_body);
    assert_eq!(app.all_events().await.len(), 2);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn idempotency_key_with_another_body_is_422_and_changes_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    assert_eq!(
        app.post("/payment/process", CHARGE, Some("k1"))
            .await
            .status(),
        200
    );
    let other = r#"{"amount":2000,"currency":"usd"}"#;
    let (status, kind, code) =
        error_of(app.post("/payment/process", other, Some("k1")).await).await;
    assert_eq!(
        (status, kind.as_str(), code.as_str()),
        (422, "idempotency_error", "idempotency_key_reused")
    );
    assert_eq!(app.all_events().await.len(), 2);
    // Keys belong to the API key that used them: another caller may reuse the text.
    let admin = app
        .client
        .post(app.url("/payment/process"))
        .bearer_auth(&app.admin_key)
        .header("idempotency-key", "k1")
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    assert_eq!(app.sandbox.charges_made(), 2);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 + 2000);
}

#[tokio::test]
async fn idempotency_key_in_flight_is_409() {
    let app = spawn_app(Kind::Sqlite).await;
    app.sandbox.hold();
    let first = tokio::spawn({
        let (client, url, key) = (
            app.client.clone(),
            app.url("/payment/process"),
            app.write_key.clone(),
        );
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .header("idempotency-key", "slow")
                .body(CHARGE)
                .send()
                .await
                .unwrap()
        }
    });
    wait_until(|| app.sandbox.calls() == 1).await;
    let second = app.post("/payment/process", CHARGE, Some("slow")).await;
    assert_eq!(
        error_of(second).await,
        (409, "conflict".into(), "idempotency_key_in_use".into())
    );
    app.sandbox.release();
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(app.sandbox.charges_made(), 1);
    // Once finished, the same key replays.
    let again = app.post("/payment/process", CHARGE, Some("slow")).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
}

#[tokio::test]
async fn a_pending_charge_completes_on_retry_and_only_for_the_same_request() {
    let app = spawn_app(Kind::Sqlite).await;
    app.sandbox
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let pending = app.post("/payment/process", CHARGE, Some("p1")).await;
    assert_eq!(pending.status(), 202);
    let pending: Value = pending.json().await.unwrap();
    assert_eq!(pending["status"], "pending");

    // The same key with another body is refused, even though no response is stored yet.
    let other = r#"{"amount":5000,"currency":"eur","payment_method":"tok_visa"}"#;
    let (status, kind, _) = error_of(app.post("/payment/process", other, Some("p1")).await).await;
    assert_eq!((status, kind.as_str()), (422, "idempotency_error"));
    assert_eq!(
        app.all_events().await.len(),
        1,
        "only ChargeRequested so far"
    );

    // The gateway is back: the same request completes the same charge.
    app.sandbox
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let done = app.post("/payment/process", CHARGE, Some("p1")).await;
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(
        (done["id"].clone(), done["status"].clone()),
        (pending["id"].clone(), "succeeded".into())
    );
    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["ChargeRequested", "ChargeSucceeded"]);
    assert_eq!(app.sandbox.charges_made(), 1);
    let replay = app.post("/payment/process", CHARGE, Some("p1")).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
}

#[tokio::test]
async fn a_client_that_disconnects_does_not_lose_the_outcome() {
    let app = spawn_app(Kind::Sqlite).await;
    app.sandbox.hold();
    // A raw connection, closed as soon as the request has reached the gateway.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /payment/process HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Idempotency-Key: d1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{CHARGE}",
        app.write_key,
        CHARGE.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes())
        .await
        .unwrap();
    wait_until(|| app.sandbox.calls() == 1).await;
    drop(socket);
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.sandbox.release();
    wait_until_async(|| async { app.all_events().await.len() == 2 }).await;
    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["ChargeRequested", "ChargeSucceeded"]);
    let replay = app.post("/payment/process", CHARGE, Some("d1")).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay.headers()["idempotent-replayed"],
        "true",
        "the response was stored too"
    );
    assert_eq!(app.sandbox.charges_made(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
}

/// Polls a condition every 10 ms, for at most 10 s.
async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 10 s");
}

async fn wait_until_async<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) {
    for _ in 0..1_000 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 10 s");
}

#[tokio::test]
async fn a_bad_idempotency_key_is_refused() {
    let app = spawn_app(Kind::Sqlite).await;
    let long = "k".repeat(256);
    let (status, _, code) = error_of(app.post("/payment/process", CHARGE, Some(&long)).await).await;
    assert_eq!((status, code.as_str()), (400, "idempotency_key_invalid"));
    assert_eq!(app.head().await.0, 0);
}

#[tokio::test]
async fn idempotent_charges_from_two_servers_on_one_database_charge_once() {
    // Two processes' worth of servers (separate stores, writers and in-flight sets) on one
    // PostgreSQL database, the same key sent to both at once: the derived charge id puts both on
    // one stream, so there is one ChargeRequested and one outcome.
    let a = spawn_app(Kind::Postgres).await;
    let b_store = ledger::store::postgres::PgStore::connect(&a_db_url(&a).await, 4)
        .await
        .unwrap();
    let b_state = api::state::AppState::new(
        &ledger::store::AnyStore::Postgres(b_store),
        a.sandbox.clone() as std::sync::Arc<dyn gateways::Gateway>,
        ledger::vault::Key::generate().unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, api::http::router(b_state)).await;
    });
    let send = |base: String| {
        let client = a.client.clone();
        let key = a.write_key.clone();
        async move {
            client
                .post(format!("{base}/payment/process"))
                .bearer_auth(key)
                .header("idempotency-key", "twin")
                .body(CHARGE)
                .send()
                .await
                .unwrap()
        }
    };
    let (r1, r2) = tokio::join!(send(a.base.clone()), send(b_url));
    let statuses = [r1.status().as_u16(), r2.status().as_u16()];
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [200, 409].contains(s)),
        "{statuses:?}"
    );
    let types: Vec<String> = a
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["ChargeRequested", "ChargeSucceeded"]);
    assert_eq!(a.sandbox.charges_made(), 1);
    let tb = a.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
}

async fn a_db_url(app: &TestApp) -> String {
    app.db_url().expect("postgres app").to_string()
}

#[tokio::test]
async fn a_revoked_key_stops_working_within_the_cache_ttl() {
    use api::http::key_cache::KEY_CACHE_TTL_MS;
    use ledger::access::{Scope, create_key};

    let app = spawn_app(Kind::Sqlite).await;
    let keys = app.keys();
    let (key, secret) = create_key(keys.as_ref(), Scope::Write, chrono::Utc::now())
        .await
        .unwrap();
    let charge = || {
        app.client
            .post(app.url("/payment/process"))
            .bearer_auth(secret.expose())
            .body(CHARGE)
            .send()
    };
    assert_eq!(
        charge().await.unwrap().status(),
        200,
        "the key works and is now cached"
    );
    assert!(keys.revoke_key(key.id, chrono::Utc::now()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(KEY_CACHE_TTL_MS + 100)).await;
    assert_eq!(
        charge().await.unwrap().status(),
        401,
        "revoked, once the cache entry expired"
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
}
