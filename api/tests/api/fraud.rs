//! Fraud screening and reviews (issue 5, item 5): evaluated before the gateway is called; a
//! `review` holds the charge (listed at `/v1/reviews`; approve charges it, reject fails it); a
//! `block` is a 402 with `fraud_blocked`; every decision is an event and a metric.

use std::collections::HashMap;
use std::sync::Arc;

use commands::charge::fraud::{FraudRules, RuleAction};
use ledger::money::Currency;
use serde_json::{Value, json};

use crate::support::{Kind, TestApp, TestGateway, error_of, spawn_app_fraud};

fn rules() -> FraudRules {
    FraudRules {
        velocity_per_method: Some((3, RuleAction::Block)),
        review_above: HashMap::from([(Currency::USD, 10_000)]),
        block_above: HashMap::from([(Currency::USD, 100_000)]),
        country_mismatch: Some(RuleAction::Review),
        ..FraudRules::default()
    }
}

/// A customer billed in `country` with one sandbox method issued in `method_country`.
async fn customer(app: &TestApp, country: &str, token: &str, method_country: &str) -> String {
    let body =
        json!({"email": "risk@example.com", "currency": "usd", "address": {"country": country}});
    let c = app.post_ok("/v1/customers", &body.to_string()).await;
    let id = c["id"].as_str().unwrap().to_string();
    let pm = json!({"gateway": "sandbox", "token": token, "country": method_country});
    let c = app
        .post_ok(
            &format!("/v1/customers/{id}/payment_methods"),
            &pm.to_string(),
        )
        .await;
    assert_eq!(
        c["payment_methods"][0]["country"],
        method_country.to_uppercase()
    );
    id
}

async fn charge(app: &TestApp, customer: &str, amount: i64, key: &str) -> reqwest::Response {
    let body = json!({"customer_id": customer, "amount": amount, "currency": "usd"});
    app.post("/v1/charges", &body.to_string(), Some(key)).await
}

async fn types_of(app: &TestApp, charge_id: &str) -> Vec<String> {
    let stream = ledger::StreamId::new(format!("charge-{charge_id}")).unwrap();
    let events = app.store.read_stream(&stream).await.unwrap();
    events.into_iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn a_review_holds_the_charge_until_approved_then_it_is_charged_once() {
    let gateway = Arc::new(TestGateway::default());
    let app = spawn_app_fraud(Kind::Postgres, gateway.clone(), rules()).await;
    let cus = customer(&app, "US", "tok_visa", "us").await;
    let r = charge(&app, &cus, 20_000, "big-1").await;
    assert_eq!(r.status(), 202);
    let held: Value = r.json().await.unwrap();
    assert_eq!(held["status"], "in_review", "{held}");
    let id = held["id"].as_str().unwrap().to_string();
    assert_eq!(
        gateway.calls(),
        0,
        "the gateway is not called while in review"
    );
    assert_eq!(
        types_of(&app, &id).await,
        ["ChargeRequested", "FraudAssessed"]
    );
    // Recovery leaves held charges alone.
    let mut scan = commands::charge::recovery::RecoveryScan::new();
    app.charge_service()
        .recover(
            app.store.as_ref(),
            &mut scan,
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(gateway.calls(), 0);

    let head = app.head().await.0;
    let open = app
        .get_ok(&format!("/v1/reviews?min_position={head}"))
        .await;
    assert_eq!(open["data"].as_array().unwrap().len(), 1, "{open}");
    assert_eq!(open["data"][0]["id"], id.as_str());
    assert_eq!(open["data"][0]["open"], true);
    assert_eq!(open["data"][0]["rules"], json!(["amount_review"]));

    let approved = app
        .post_ok(&format!("/v1/reviews/{id}/approve"), "{}")
        .await;
    assert_eq!(approved["reason"], "approved", "{approved}");
    assert_eq!(approved["charge_status"], "succeeded", "{approved}");
    assert_eq!(gateway.charges_made(), 1);
    // Approving again answers the same; rejecting now is a conflict; nothing is charged again.
    let again = app
        .post_ok(&format!("/v1/reviews/{id}/approve"), "{}")
        .await;
    assert_eq!(again["charge_status"], "succeeded");
    let (status, _, code) = error_of(
        app.post(&format!("/v1/reviews/{id}/reject"), "{}", None)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "review_closed"));
    assert_eq!(gateway.charges_made(), 1);
    assert_eq!(
        types_of(&app, &id).await,
        [
            "ChargeRequested",
            "FraudAssessed",
            "ReviewClosed",
            "ChargeSucceeded"
        ]
    );
    let head = app.head().await.0;
    let open = app
        .get_ok(&format!("/v1/reviews?min_position={head}"))
        .await;
    assert_eq!(open["data"], json!([]), "{open}");
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_rejected_review_fails_the_charge_without_calling_the_gateway() {
    let gateway = Arc::new(TestGateway::default());
    let app = spawn_app_fraud(Kind::Sqlite, gateway.clone(), rules()).await;
    // Billed in France, card from the US: reviewed.
    let cus = customer(&app, "FR", "tok_visa", "US").await;
    let held: Value = charge(&app, &cus, 500, "mismatch-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held["status"], "in_review", "{held}");
    let id = held["id"].as_str().unwrap();
    let rejected = app.post_ok(&format!("/v1/reviews/{id}/reject"), "{}").await;
    assert_eq!(rejected["reason"], "rejected");
    assert_eq!(rejected["charge_status"], "failed");
    assert_eq!(rejected["failure_code"], "review_rejected");
    assert_eq!(rejected["rules"], json!(["country_mismatch"]));
    assert_eq!(gateway.calls(), 0);
    let (status, _, code) = error_of(
        app.post(&format!("/v1/reviews/{id}/approve"), "{}", None)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "review_closed"));
    let (status, _, _) = error_of(app.post("/v1/reviews/ch_nope/approve", "{}", None).await).await;
    assert_eq!(status, 404);
    let (status, _, code) = error_of(
        app.post(
            &format!("/v1/reviews/{id}/approve"),
            r#"{"force":true}"#,
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "parameter_unknown"));
}

#[tokio::test]
async fn blocks_are_402_fraud_blocked_and_velocity_counts_attempts_per_payment_method() {
    let gateway = Arc::new(TestGateway::default());
    let app = spawn_app_fraud(Kind::Postgres, gateway.clone(), rules()).await;
    let cus = customer(&app, "US", "tok_visa", "US").await;
    let blocked = charge(&app, &cus, 100_001, "huge-1").await;
    assert_eq!(blocked.status(), 402);
    let blocked: Value = blocked.json().await.unwrap();
    assert_eq!(blocked["error"]["type"], "card_error", "{blocked}");
    assert_eq!(
        blocked["error"]["decline_code"], "fraud_blocked",
        "{blocked}"
    );
    assert_eq!(gateway.calls(), 0);
    // Three attempts with this method allowed in the hour (the block counted as one); a retry
    // of the same request is not another attempt.
    assert_eq!(charge(&app, &cus, 100, "v-0").await.status(), 200);
    for _ in 0..3 {
        assert_eq!(charge(&app, &cus, 100, "v-0").await.status(), 200);
    }
    assert_eq!(charge(&app, &cus, 100, "v-1").await.status(), 200);
    let blocked: Value = charge(&app, &cus, 100, "v-3").await.json().await.unwrap();
    assert_eq!(
        blocked["error"]["decline_code"], "fraud_blocked",
        "{blocked}"
    );
    assert_eq!(gateway.charges_made(), 2);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("billing_fraud_decisions_total{decision=\"block\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("billing_fraud_decisions_total{decision=\"allow\"}"),
        "{metrics}"
    );
}
