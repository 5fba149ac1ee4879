//! PayPal end to end (issue 5, items 2 and 4): charges and refunds of a customer's PayPal method
//! go to PayPal (the stand-in) as orders captured under our keys; `POST /webhooks/paypal` is
//! verified by PayPal's verify-webhook-signature call, recorded once, and translated — a capture
//! completed before our own answer settles the charge, refunds made at PayPal reach the books.

use std::time::Duration;

use gateways::stand_in::PaypalStandIn;
use serde_json::{Value, json};

use crate::support::{Kind, PAYPAL_WEBHOOK_ID, TestApp, error_of, spawn_app_paypal};

async fn stand_in() -> PaypalStandIn {
    PaypalStandIn::start("standin-client", "standin-secret").await
}

/// A customer paying with PayPal vault id `vault`.
async fn customer(app: &TestApp, vault: &str) -> String {
    let c = app
        .post_ok(
            "/v1/customers",
            &json!({"email": "pp@example.com", "currency": "usd"}).to_string(),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let pm = json!({"gateway": "paypal", "token": vault});
    app.post_ok(
        &format!("/v1/customers/{id}/payment_methods"),
        &pm.to_string(),
    )
    .await;
    id
}

fn event(id: &str, event_type: &str, resource_type: &str, resource: &Value) -> String {
    json!({"id": id, "event_version": "1.0", "create_time": "2026-11-30T10:00:00.000Z",
        "resource_type": resource_type, "resource_version": "2.0", "event_type": event_type,
        "summary": "Payment event", "resource": resource, "links": []})
    .to_string()
}

async fn deliver(app: &TestApp, body: &str, signature: Option<&str>) -> reqwest::Response {
    deliver_with_cert(
        app,
        body,
        signature,
        "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
    )
    .await
}

async fn deliver_with_cert(
    app: &TestApp,
    body: &str,
    signature: Option<&str>,
    cert_url: &str,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/webhooks/paypal"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(sig) = signature {
        req = req
            .header("paypal-auth-algo", "SHA256withRSA")
            .header("paypal-cert-url", cert_url)
            .header(
                "paypal-transmission-id",
                "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
            )
            .header("paypal-transmission-sig", sig)
            .header("paypal-transmission-time", "2026-11-30T10:00:01Z");
    }
    req.send().await.unwrap()
}

async fn charge_types(app: &TestApp, charge_id: &str) -> Vec<String> {
    let stream = ledger::StreamId::new(format!("charge-{charge_id}")).unwrap();
    let events = app.store.read_stream(&stream).await.unwrap();
    events.into_iter().map(|e| e.event_type).collect()
}

#[tokio::test]
async fn charges_and_refunds_go_to_paypal_and_its_refund_webhooks_reach_the_books() {
    let paypal = stand_in().await;
    let app = spawn_app_paypal(Kind::Postgres, &paypal).await;
    let cus = customer(&app, "vault_ok_1").await;
    let r = app
        .post(
            "/v1/charges",
            &json!({"customer_id": cus, "amount": 2500, "currency": "usd"}).to_string(),
            Some("pp-1"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let paid: Value = r.json().await.unwrap();
    assert_eq!(paid["gateway"], "paypal", "{paid}");
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let charge_id = paid["id"].as_str().unwrap().to_string();
    let capture = paypal.last_capture().unwrap();
    assert_eq!(paid["gateway_charge_id"], capture["id"]);
    assert_eq!(capture["custom_id"], format!("charge-{charge_id}").as_str());
    assert_eq!(paypal.captures(), 1);
    let r = app
        .post(
            "/v1/refunds",
            &json!({"charge_id": charge_id, "amount": 500}).to_string(),
            Some("pp-r1"),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(paypal.refunds(), 1);

    // PayPal reports 20.00 refunded in all: ours (5.00) and 15.00 refunded at PayPal itself.
    let refund = json!({"id": "1LR28403PJ573210C", "status": "COMPLETED",
        "amount": {"currency_code": "USD", "value": "15.00"},
        "seller_payable_breakdown": {"total_refunded_amount": {"currency_code": "USD", "value": "20.00"}},
        "links": [{"rel": "up", "method": "GET",
            "href": format!("https://api.sandbox.paypal.com/v2/payments/captures/{}", capture["id"].as_str().unwrap())}]});
    let body = event("WH-REFUND-1", "PAYMENT.CAPTURE.REFUNDED", "refund", &refund);
    // Not verified by PayPal, or without its headers: 400, nothing recorded.
    let before = app.head().await;
    let (status, _, code) = error_of(deliver(&app, &body, Some("forged")).await).await;
    assert_eq!((status, code.as_str()), (400, "signature_invalid"));
    let (status, _, code) = error_of(deliver(&app, &body, None).await).await;
    assert_eq!((status, code.as_str()), (400, "signature_missing"));
    // A certificate that is not PayPal's: refused without asking PayPal.
    let asked = paypal.verifications();
    let forged =
        deliver_with_cert(&app, &body, Some("valid"), "https://certs.evil.example/c").await;
    let (status, _, code) = error_of(forged).await;
    assert_eq!((status, code.as_str()), (400, "signature_invalid"));
    assert_eq!(paypal.verifications(), asked);
    assert_eq!(app.head().await, before, "nothing recorded");
    let verified_before = paypal.verifications();

    let r = deliver(&app, &body, Some("valid")).await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["duplicate"], false);
    assert_eq!(paypal.verifications(), verified_before + 1);
    let sent: Value = serde_json::from_str(&paypal.last_verification().unwrap()).unwrap();
    assert_eq!(sent["webhook_id"], PAYPAL_WEBHOOK_ID);
    assert_eq!(sent["transmission_sig"], "valid");
    assert_eq!(
        charge_types(&app, &charge_id).await,
        [
            "ChargeRequested",
            "ChargeSucceeded",
            "RefundRequested",
            "RefundSucceeded",
            "RefundRequested",
            "RefundSucceeded"
        ]
    );
    let again: Value = deliver(&app, &body, Some("valid"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(
        paypal.verifications(),
        verified_before + 1,
        "a delivery recorded already is not verified again"
    );
    let head = app.head().await.0;
    let got = app
        .get_ok(&format!("/v1/charges/{charge_id}?min_position={head}"))
        .await;
    assert_eq!(got["amount_refunded"], 2000, "{got}");
    app.assert_books_balance().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_completed_webhook_settles_a_charge_paypal_left_pending() {
    let paypal = stand_in().await;
    let app = spawn_app_paypal(Kind::Sqlite, &paypal).await;
    let cus = customer(&app, "vault_pending").await;
    let r = app
        .post(
            "/v1/charges",
            &json!({"customer_id": cus, "amount": 1200, "currency": "usd"}).to_string(),
            Some("pp-p"),
        )
        .await;
    assert_eq!(r.status(), 202, "PayPal's capture is pending");
    let pending: Value = r.json().await.unwrap();
    let charge_id = pending["id"].as_str().unwrap().to_string();
    assert_eq!(
        charge_types(&app, &charge_id).await,
        ["ChargeRequested", "ChargeProcessing"]
    );
    // Taken in by PayPal: recovery does not ask again (the webhook settles it).
    let asked = paypal.requests().len();
    let mut scan = commands::charge::recovery::RecoveryScan::new();
    let later = chrono::Utc::now() + chrono::Duration::minutes(10);
    app.charge_service()
        .recover(app.store.as_ref(), &mut scan, later)
        .await
        .unwrap();
    assert_eq!(paypal.requests().len(), asked, "PayPal not asked again");
    let mut capture = paypal.last_capture().unwrap();
    capture["status"] = json!("COMPLETED");
    let body = event(
        "WH-CAPTURE-1",
        "PAYMENT.CAPTURE.COMPLETED",
        "capture",
        &capture,
    );
    assert_eq!(deliver(&app, &body, Some("valid")).await.status(), 200);
    assert_eq!(
        charge_types(&app, &charge_id).await,
        ["ChargeRequested", "ChargeProcessing", "ChargeSucceeded"]
    );
    // A later retry of the same request finds the charge settled.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let r = app
        .post(
            "/v1/charges",
            &json!({"customer_id": cus, "amount": 1200, "currency": "usd"}).to_string(),
            Some("pp-p"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let paid: Value = r.json().await.unwrap();
    assert_eq!(paid["status"], "succeeded", "{paid}");
}

#[tokio::test]
async fn a_capture_denied_webhook_fails_a_charge_paypal_left_pending_and_a_replay_changes_nothing()
{
    let paypal = stand_in().await;
    let app = spawn_app_paypal(Kind::Postgres, &paypal).await;
    let cus = customer(&app, "vault_pending").await;
    let r = app
        .post(
            "/v1/charges",
            &json!({"customer_id": cus, "amount": 800, "currency": "usd"}).to_string(),
            Some("pp-d"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let pending: Value = r.json().await.unwrap();
    let charge_id = pending["id"].as_str().unwrap().to_string();
    let mut capture = paypal.last_capture().unwrap();
    capture["status"] = json!("DECLINED");
    let capture = capture;
    let body = event("WH-DENIED-1", "PAYMENT.CAPTURE.DENIED", "capture", &capture);
    assert_eq!(deliver(&app, &body, Some("valid")).await.status(), 200);
    assert_eq!(
        charge_types(&app, &charge_id).await,
        ["ChargeRequested", "ChargeProcessing", "ChargeFailed"]
    );
    // The same event delivered again: nothing new.
    let again: Value = deliver(&app, &body, Some("valid"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(charge_types(&app, &charge_id).await.len(), 3);
    // PayPal later claims the capture completed: the failed charge is not rewritten, the
    // disagreement is counted for a person to reconcile.
    let mut completed = capture.clone();
    completed["status"] = json!("COMPLETED");
    let late = event(
        "WH-COMPLETED-LATE",
        "PAYMENT.CAPTURE.COMPLETED",
        "capture",
        &completed,
    );
    assert_eq!(deliver(&app, &late, Some("valid")).await.status(), 200);
    assert_eq!(charge_types(&app, &charge_id).await.len(), 3);
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
        metrics.contains("billing_gateway_disagreements_total"),
        "{metrics}"
    );
    let head = app.head().await.0;
    let got = app
        .get_ok(&format!("/v1/charges/{charge_id}?min_position={head}"))
        .await;
    assert_eq!(got["status"], "failed", "{got}");
    app.assert_books_balance().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_deliveries_never_has_more_than_eight_verifications_at_paypal_at_once() {
    let paypal = stand_in().await;
    let app = spawn_app_paypal(Kind::Sqlite, &paypal).await;
    paypal.set_delay(Duration::from_millis(500));
    let sends = (0..12).map(|i| {
        let body = event(
            &format!("WH-FLOOD-{i}"),
            "CUSTOMER.DISPUTE.CREATED",
            "dispute",
            &json!({}),
        );
        let app = &app;
        async move { deliver(app, &body, Some("forged")).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(sends).await;
    let busy = statuses.iter().filter(|s| **s == 503).count();
    let refused = statuses.iter().filter(|s| **s == 400).count();
    assert_eq!(busy + refused, 12, "{statuses:?}");
    assert!(busy >= 4, "at most eight asked at once: {statuses:?}");
    assert_eq!(paypal.verifications(), refused as u64);
}
