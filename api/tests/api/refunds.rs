//! `POST /v1/refunds`: partial, repeated, never beyond what was captured.

use serde_json::{Value, json};

use crate::support::{Kind, TestApp, account_balance, error_of, spawn_app};

async fn charge(app: &TestApp, amount: i64, token: &str) -> Value {
    let body = json!({"amount": amount, "currency": "usd", "payment_method": token}).to_string();
    app.post("/payment/process", &body, None)
        .await
        .json()
        .await
        .unwrap()
}

async fn refund(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/refunds", &body.to_string(), None).await
}

#[tokio::test]
async fn partial_and_repeated_refunds_stop_at_the_captured_amount() {
    let app = spawn_app(Kind::Sqlite).await;
    let ch = charge(&app, 1000, "tok_visa").await;
    let id = ch["id"].as_str().unwrap();

    let first = refund(
        &app,
        json!({"charge_id": id, "amount": 300, "reason": "requested_by_customer"}),
    )
    .await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert!(first["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(
        (first["status"].clone(), first["amount"].clone()),
        ("succeeded".into(), 300.into())
    );
    assert_eq!(first["charge"], id);

    let too_much = refund(&app, json!({"charge_id": id, "amount": 800})).await;
    assert_eq!(
        error_of(too_much).await,
        (
            400,
            "invalid_request_error".into(),
            "amount_too_large".into()
        )
    );

    let rest: Value = refund(&app, json!({"charge_id": id}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (rest["status"].clone(), rest["amount"].clone()),
        ("succeeded".into(), 700.into())
    );
    let again = refund(&app, json!({"charge_id": id})).await;
    assert_eq!(error_of(again).await.2, "charge_already_refunded");

    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "ChargeRequested",
            "ChargeSucceeded",
            "RefundRequested",
            "RefundSucceeded",
            "RefundRequested",
            "RefundSucceeded"
        ]
    );
    let gateway_charge = ch["gateway_charge_id"].as_str().unwrap();
    assert_eq!(app.sandbox.refunded_minor(gateway_charge), Some(1000));
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        0,
        "all of it given back"
    );
    assert_eq!(account_balance(&tb, "usd", "refunds"), 1000);
}

#[tokio::test]
async fn refunds_that_cannot_be_are_4xx_and_append_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let declined = charge(&app, 500, "tok_chargeDeclined").await;
    let declined_id = declined["error"]["charge"].as_str().unwrap().to_string();
    let ok = charge(&app, 500, "tok_visa").await;
    let ok_id = ok["id"].as_str().unwrap().to_string();
    let before = app.head().await;

    let cases = [
        (
            json!({"charge_id": declined_id}),
            400,
            "charge_not_refundable",
        ),
        (
            json!({"charge_id": ok_id, "amount": 0}),
            400,
            "amount_invalid",
        ),
        (
            json!({"charge_id": ok_id, "amount": -5}),
            400,
            "amount_invalid",
        ),
        (
            json!({"charge_id": ok_id, "amount": 501}),
            400,
            "amount_too_large",
        ),
        (
            json!({"charge_id": ok_id, "reason": "bored"}),
            400,
            "parameter_invalid",
        ),
        (
            json!({"charge_id": ok_id, "amount": 1.5}),
            400,
            "parameter_invalid",
        ),
        (
            json!({"charge_id": ok_id, "extra": 1}),
            400,
            "parameter_invalid",
        ),
        (
            json!({"charge_id": ledger::ids::ChargeId::new().to_string()}),
            404,
            "resource_missing",
        ),
        (json!({"charge_id": "ch_nope"}), 404, "resource_missing"),
    ];
    for (body, status, code) in cases {
        let (got_status, _, got_code) = error_of(refund(&app, body.clone()).await).await;
        assert_eq!((got_status, got_code.as_str()), (status, code), "{body}");
    }
    assert_eq!(app.head().await, before, "nothing appended");
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        500,
        "only the charge that succeeded"
    );
}

#[tokio::test]
async fn fifty_concurrent_refunds_never_exceed_the_charge() {
    let app = spawn_app(Kind::Postgres).await;
    let ch = charge(&app, 1000, "tok_visa").await;
    let id = ch["id"].as_str().unwrap().to_string();
    let requests = (0..50).map(|_| {
        let (client, url, key, id) = (
            app.client.clone(),
            app.url("/v1/refunds"),
            app.write_key.clone(),
            id.clone(),
        );
        tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(key)
                .body(json!({"charge_id": id, "amount": 30}).to_string())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    });
    let mut refunded = 0;
    let mut answered = 0;
    for r in futures_util::future::join_all(requests).await {
        let (status, body) = r.unwrap();
        match status {
            200 => {
                assert_eq!(body["status"], "succeeded");
                refunded += body["amount"].as_i64().unwrap();
                answered += 1;
            }
            400 => assert_eq!(body["error"]["code"], "amount_too_large"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(answered, 33, "every refund that fits was made");
    assert_eq!(refunded, 990);
    let in_log: i64 = app
        .all_events()
        .await
        .iter()
        .filter(|e| e.event_type == "RefundRequested")
        .map(|e| e.payload["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(in_log, 990, "the log holds exactly the refunds answered");
    assert_eq!(
        app.sandbox
            .refunded_minor(ch["gateway_charge_id"].as_str().unwrap()),
        Some(990)
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 - 990);
    assert_eq!(account_balance(&tb, "usd", "refunds"), 990);
}

#[tokio::test]
async fn a_refund_is_idempotent() {
    let app = spawn_app(Kind::Sqlite).await;
    let ch = charge(&app, 1000, "tok_visa").await;
    let body = json!({"charge_id": ch["id"], "amount": 100}).to_string();
    let first = app.post("/v1/refunds", &body, Some("r-1")).await;
    assert_eq!(first.status(), 200);
    let first_body = first.text().await.unwrap();
    let second = app.post("/v1/refunds", &body, Some("r-1")).await;
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.unwrap(), first_body);
    let other = json!({"charge_id": ch["id"], "amount": 200}).to_string();
    assert_eq!(
        error_of(app.post("/v1/refunds", &other, Some("r-1")).await)
            .await
            .0,
        422
    );
    assert_eq!(
        app.sandbox
            .refunded_minor(ch["gateway_charge_id"].as_str().unwrap()),
        Some(100)
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 - 100);
}

#[tokio::test]
async fn a_pending_refund_keeps_its_amount_reserved_and_completes_on_retry() {
    use std::sync::atomic::Ordering;

    let app = spawn_app(Kind::Sqlite).await;
    let ch = charge(&app, 1000, "tok_visa").await;
    let body = json!({"charge_id": ch["id"], "amount": 600}).to_string();
    app.sandbox.down.store(true, Ordering::SeqCst);
    let pending = app.post("/v1/refunds", &body, Some("r-p")).await;
    assert_eq!(pending.status(), 202);
    let pending: Value = pending.json().await.unwrap();
    assert_eq!(pending["status"], "pending");

    // The pending 600 is reserved: only 400 may be refunded meanwhile.
    let more = refund(&app, json!({"charge_id": ch["id"], "amount": 401})).await;
    assert_eq!(error_of(more).await.2, "amount_too_large");
    // Another body under the same key is refused, even while pending.
    let other = json!({"charge_id": ch["id"], "amount": 100}).to_string();
    assert_eq!(
        error_of(app.post("/v1/refunds", &other, Some("r-p")).await)
            .await
            .0,
        422
    );

    app.sandbox.down.store(false, Ordering::SeqCst);
    let done = app.post("/v1/refunds", &body, Some("r-p")).await;
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(
        (done["id"].clone(), done["status"].clone()),
        (pending["id"].clone(), "succeeded".into())
    );
    assert_eq!(
        app.sandbox
            .refunded_minor(ch["gateway_charge_id"].as_str().unwrap()),
        Some(600)
    );
    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            "ChargeRequested",
            "ChargeSucceeded",
            "RefundRequested",
            "RefundSucceeded"
        ]
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 - 600);
}

#[tokio::test]
async fn recovery_completes_pending_charges_and_refunds_once() {
    use commands::charge::recovery::RecoveryScan;
    use std::sync::atomic::Ordering;

    let app = spawn_app(Kind::Sqlite).await;
    let paid = charge(&app, 1000, "tok_visa").await;
    app.sandbox.down.store(true, Ordering::SeqCst);
    // No Idempotency-Key: nothing but recovery can complete these.
    let pending_charge = charge(&app, 700, "tok_visa").await;
    assert_eq!(pending_charge["status"], "pending");
    let pending_refund = refund(&app, json!({"charge_id": paid["id"], "amount": 250})).await;
    assert_eq!(pending_refund.status(), 202);

    let charges = app.charge_service();
    let mut scan = RecoveryScan::new();
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    // Gateway still down: nothing completes, nothing is invented.
    let report = charges
        .recover(app.store.as_ref(), &mut scan, later)
        .await
        .unwrap();
    assert_eq!(
        (
            report.charges_completed,
            report.refunds_completed,
            report.still_pending
        ),
        (0, 0, 2)
    );

    app.sandbox.down.store(false, Ordering::SeqCst);
    // Too recent for the grace period: left alone.
    let report = charges
        .recover(
            app.store.as_ref(),
            &mut scan,
            chrono::Utc::now() - chrono::Duration::seconds(60),
        )
        .await
        .unwrap();
    assert_eq!((report.charges_completed, report.still_pending), (0, 2));

    let report = charges
        .recover(app.store.as_ref(), &mut scan, later)
        .await
        .unwrap();
    assert_eq!(
        (
            report.charges_completed,
            report.refunds_completed,
            report.still_pending
        ),
        (1, 1, 0)
    );
    let again = charges
        .recover(app.store.as_ref(), &mut RecoveryScan::new(), later)
        .await
        .unwrap();
    assert_eq!(
        again,
        Default::default(),
        "a second run, even from a fresh scan, changes nothing"
    );

    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "ChargeSucceeded").count(), 2);
    assert_eq!(types.iter().filter(|t| *t == "RefundSucceeded").count(), 1);
    assert_eq!(app.sandbox.charges_made(), 2, "one gateway charge each");
    assert_eq!(
        app.sandbox
            .refunded_minor(paid["gateway_charge_id"].as_str().unwrap()),
        Some(250)
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        1000 + 700 - 250
    );
}
