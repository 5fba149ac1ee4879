//! `POST /webhooks/stripe`: signature first, then the raw delivery recorded once; everything
//! else refused with 400 and nothing recorded; no body makes it fail.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{Kind, TestApp, WEBHOOK_SECRETS, error_of, spawn_app};

/// A Stripe event envelope around `object` (the shape of Stripe's API reference).
pub(crate) fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2022-11-15", "created": 1_764_500_000,
        "livemode": false, "pending_webhooks": 1,
        "request": {"id": "req_8AbcdEfgH1jkLm", "idempotency_key": "charge-ch_0001"},
        "type": kind, "data": {"object": object},
    })
    .to_string()
}

fn payment_intent(status: &str, error: Option<Value>) -> Value {
    json!({
        "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "object": "payment_intent", "amount": 2000,
        "amount_received": if status == "succeeded" { 2000 } else { 0 }, "currency": "usd",
        "customer": "cus_NffrFeUfNV2Hib", "payment_method": "pm_1MtwBwLkdIwHu7ixoPnmsE5e",
        "status": status, "last_payment_error": error, "livemode": false,
        "metadata": {"charge_id": "ch_0001"}, "latest_charge": "ch_3MtwBwLkdIwHu7ix1k1wFHd1",
    })
}

/// One delivery per event type the reactor will translate.
fn deliveries() -> Vec<(String, String)> {
    let declined = json!({"type": "card_error", "code": "card_declined",
        "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."});
    let charge = json!({"id": "ch_3MtwBwLkdIwHu7ix1k1wFHd1", "object": "charge", "amount": 2000,
        "amount_refunded": 2000, "refunded": true, "currency": "usd", "status": "succeeded",
        "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa"});
    let dispute = |status: &str| {
        json!({"id": "dp_1MtJUT2eZvKYlo2CNaw2HvEv", "object": "dispute",
        "amount": 2000, "currency": "usd", "charge": "ch_3MtwBwLkdIwHu7ix1k1wFHd1",
        "reason": "general", "status": status})
    };
    vec![
        (
            "evt_1pi_succeeded".into(),
            event(
                "evt_1pi_succeeded",
                "payment_intent.succeeded",
                payment_intent("succeeded", None),
            ),
        ),
        (
            "evt_1pi_failed".into(),
            event(
                "evt_1pi_failed",
                "payment_intent.payment_failed",
                payment_intent("requires_payment_method", Some(declined)),
            ),
        ),
        (
            "evt_1ch_refunded".into(),
            event("evt_1ch_refunded", "charge.refunded", charge),
        ),
        (
            "evt_1dp_created".into(),
            event(
                "evt_1dp_created",
                "charge.dispute.created",
                dispute("needs_response"),
            ),
        ),
        (
            "evt_1dp_closed".into(),
            event("evt_1dp_closed", "charge.dispute.closed", dispute("won")),
        ),
        (
            "evt_1unknown".into(),
            event(
                "evt_1unknown",
                "customer.tax_id.created",
                json!({"id": "txi_1"}),
            ),
        ),
    ]
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub(crate) async fn deliver(
    app: &TestApp,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(s) = signature {
        req = req.header("stripe-signature", s);
    }
    req.send().await.expect("request")
}

pub(crate) fn signed(body: &str, secret: &str, t: i64) -> Option<String> {
    Some(gateways::webhook::stripe::sign(secret, t, body.as_bytes()))
}

#[tokio::test]
async fn a_signed_delivery_is_recorded_raw_once_before_it_is_answered() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let app = spawn_app(kind).await;
        for (id, body) in deliveries() {
            let r = deliver(&app, &body, signed(&body, WEBHOOK_SECRETS[0], now())).await;
            assert_eq!(r.status(), 200, "{kind:?} {id}");
            let position: i64 = r.headers()["billing-position"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let answer: Value = r.json().await.unwrap();
            assert_eq!(
                answer,
                json!({"received": true, "id": id, "duplicate": false})
            );
            // Recorded before the answer: the raw body, byte for byte, and its signature.
            let log = app
                .get_ok(&format!("/v1/events?stream_id=gateway_event-stripe-{id}"))
                .await;
            let e = &log["data"][0];
            assert_eq!(
                (e["type"].as_str(), e["position"].as_i64()),
                (Some("GatewayEventReceived"), Some(position))
            );
            assert_eq!(e["payload"]["body"].as_str(), Some(body.as_str()));
            assert!(
                e["payload"]["headers"]["stripe-signature"]
                    .as_str()
                    .unwrap()
                    .contains("v1=")
            );
            assert_eq!(e["payload"]["gateway"], "stripe");

            // A second delivery (a new signature, Stripe's retry) records nothing new.
            let head = app.head().await;
            let again = deliver(&app, &body, signed(&body, WEBHOOK_SECRETS[0], now() + 1)).await;
            assert_eq!(again.status(), 200);
            let answer: Value = again.json().await.unwrap();
            assert_eq!(answer["duplicate"], true);
            assert_eq!(app.head().await, head, "{kind:?} {id}: nothing new");
        }
        // During a rotation the previous secret still signs.
        let body = event(
            "evt_1rotated",
            "payment_intent.succeeded",
            payment_intent("succeeded", None),
        );
        let r = deliver(&app, &body, signed(&body, WEBHOOK_SECRETS[1], now())).await;
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn a_bad_expired_or_missing_signature_is_400_and_records_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let body = event(
        "evt_1refused",
        "payment_intent.succeeded",
        payment_intent("succeeded", None),
    );
    let head = app.head().await;
    let tampered = body.replace("2000", "2001");
    let valid = signed(&body, WEBHOOK_SECRETS[0], now());
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("signature_missing", body.clone(), None),
        (
            "signature_invalid",
            body.clone(),
            signed(&body, "whsec_someone_else", now()),
        ),
        ("signature_invalid", tampered, valid.clone()),
        (
            "signature_expired",
            body.clone(),
            signed(&body, WEBHOOK_SECRETS[0], now() - 301),
        ),
        (
            "signature_expired",
            body.clone(),
            signed(&body, WEBHOOK_SECRETS[0], now() + 301),
        ),
        (
            "signature_malformed",
            body.clone(),
            Some("v1=abcdef".into()),
        ),
        (
            "event_invalid",
            r#"{"hello":"world"}"#.into(),
            signed(r#"{"hello":"world"}"#, WEBHOOK_SECRETS[0], now()),
        ),
    ];
    for (code, body, signature) in cases {
        let (status, _, got) = error_of(deliver(&app, &body, signature).await).await;
        assert_eq!((status, got.as_str()), (400, code));
    }
    assert_eq!(app.head().await, head, "nothing recorded");
    // A large signed event (an invoice with many lines, 200 KB) is recorded; beyond 512 KiB, 413.
    let lines: Vec<Value> = (0..1_500)
        .map(|i| json!({"id": format!("il_{i:020}"), "amount": 100, "description": "Seat license, monthly"}))
        .collect();
    let big = event(
        "evt_1big",
        "invoice.finalized",
        json!({"id": "in_1", "lines": {"data": lines}}),
    );
    assert!(big.len() > 100_000, "{}", big.len());
    let r = deliver(&app, &big, signed(&big, WEBHOOK_SECRETS[0], now())).await;
    assert_eq!(r.status(), 200);
    let huge = "x".repeat(600 * 1024);
    let r = deliver(&app, &huge, signed(&huge, WEBHOOK_SECRETS[0], now())).await;
    assert_eq!(r.status(), 413);
    // A replayed delivery (captured, sent again later with its old signature) is refused.
    let old = signed(&body, WEBHOOK_SECRETS[0], now() - 3_600);
    let (status, _, code) = error_of(deliver(&app, &body, old).await).await;
    assert_eq!((status, code.as_str()), (400, "signature_expired"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// No body or header makes the endpoint fail: every answer is 200 or 400 JSON, and only a
    /// correctly signed event is recorded.
    #[test]
    fn no_webhook_body_makes_the_endpoint_fail(
        body in prop::collection::vec(any::<u8>(), 0..512),
        header in prop::option::of("[ -~]{0,120}"),
        sign_it in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let app = app_once().await;
            let head = app.head().await;
            let signature = if sign_it {
                Some(gateways::webhook::stripe::sign(WEBHOOK_SECRETS[0], now(), &body))
            } else {
                header
            };
            // A client of this case's runtime (a pooled connection must not outlive its runtime).
            let client = crate::support::http_client(None);
            let mut req = client.post(app.url("/webhooks/stripe")).body(body.clone());
            if let Some(v) = signature.and_then(|s| reqwest::header::HeaderValue::from_str(&s).ok()) {
                req = req.header("stripe-signature", v);
            }
            let r = req.send().await.expect("request");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status == 200 || status == 400, "{status} {text}");
            let json: Value = serde_json::from_str(&text).expect("a JSON answer");
            if status == 400 {
                assert!(json["error"]["code"].is_string());
                assert_eq!(app.head().await, head);
            } else {
                assert!(sign_it && gateways::webhook::stripe::envelope(&body).is_some());
            }
        });
    }
}

/// One app for every case of the property (each case has its own runtime, so the app is made
/// on a runtime of its own that outlives them).
async fn app_once() -> &'static TestApp {
    static APP: std::sync::OnceLock<&'static TestApp> = std::sync::OnceLock::new();
    if let Some(app) = APP.get() {
        return app;
    }
    let app = std::thread::spawn(|| {
        let rt = Box::leak(Box::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
        ));
        let app: &'static TestApp = Box::leak(Box::new(rt.block_on(spawn_app(Kind::Sqlite))));
        app
    })
    .join()
    .unwrap();
    APP.get_or_init(|| app)
}
