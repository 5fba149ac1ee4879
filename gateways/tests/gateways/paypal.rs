//! `PaypalGateway` (reqwest) against the PayPal stand-in: orders captured under our key, declines,
//! pending captures, idempotent retries after failures on either side of PayPal's work, timeouts,
//! the cached OAuth token and its refresh, refunds, webhook verification.

use std::time::Duration;

use gateways::paypal::{PaypalConfig, PaypalGateway, PaypalSignatureHeaders};
use gateways::stand_in::PaypalStandIn;
use gateways::{ChargeOutcome, ChargeRequest, FailureCode, Gateway, GatewayError, RefundRequest};
use ledger::money::{Currency, Money};
use serde_json::json;

const ID: &str = "AbCdClientId";
const SECRET: &str = "EFgHSecret";

async fn stand_in() -> PaypalStandIn {
    PaypalStandIn::start(ID, SECRET).await
}

fn gateway(s: &PaypalStandIn) -> PaypalGateway {
    gateway_with(s, SECRET, Duration::from_secs(5))
}

fn gateway_with(s: &PaypalStandIn, secret: &str, timeout: Duration) -> PaypalGateway {
    PaypalGateway::new(PaypalConfig {
        client_id: ID.into(),
        client_secret: secret.into(),
        api_base: s.base_url().into(),
        timeout,
    })
    .unwrap()
}

fn charge_in(key: &str, vault: &str, money: Money) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        amount: money,
        payment_method: vault.into(),
        description: Some("Pro plan".into()),
        customer_ref: Some("cus_1".into()),
        off_session: true,
        gateway_customer: None,
    }
}

fn charge(key: &str, vault: &str, amount: i64) -> ChargeRequest {
    charge_in(key, vault, Money::new(amount, Currency::USD))
}

fn refund(key: &str, capture: &str, amount: i64) -> RefundRequest {
    RefundRequest {
        idempotency_key: key.into(),
        gateway_charge_id: capture.into(),
        amount: Money::new(amount, Currency::USD),
    }
}

fn post(path: &str, request_id: Option<&str>) -> (String, String, Option<String>) {
    ("POST".into(), path.into(), request_id.map(Into::into))
}

/// The requests so far, without token fetches.
fn api_requests(s: &PaypalStandIn) -> Vec<(String, String, Option<String>)> {
    let mut r = s.requests();
    r.retain(|(_, path, _)| path != "/v1/oauth2/token");
    r
}

#[tokio::test]
async fn a_charge_is_an_order_captured_under_our_idempotency_key() {
    let s = stand_in().await;
    let g = gateway(&s);
    let out = g
        .charge(charge("charge-a", "vault_ok", 1999))
        .await
        .unwrap();
    let ChargeOutcome::Succeeded { gateway_charge_id } = &out else {
        panic!("{out:?}")
    };
    let capture = s.capture(gateway_charge_id).unwrap();
    let order_id = capture["supplementary_data"]["related_ids"]["order_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(capture["status"], "COMPLETED");
    assert_eq!(capture["custom_id"], "charge-a");
    assert_eq!(
        capture["amount"],
        json!({ "currency_code": "USD", "value": "19.99" })
    );
    assert_eq!(s.last_capture(), Some(capture));
    assert_eq!(s.captures(), 1);
    assert_eq!(
        s.requests(),
        [
            post("/v1/oauth2/token", None),
            post("/v2/checkout/orders", Some("charge-a:order")),
            post(
                &format!("/v2/checkout/orders/{order_id}/capture"),
                Some("charge-a:capture")
            ),
        ]
    );
    // The same key again: PayPal's stored answers, no second capture.
    let again = g
        .charge(charge("charge-a", "vault_ok", 1999))
        .await
        .unwrap();
    assert_eq!(again, out);
    assert_eq!(s.captures(), 1);
    // A second charge has a key, an order and a capture of its own.
    let other = g
        .charge(charge("charge-b", "vault_ok_2", 500))
        .await
        .unwrap();
    assert_ne!(other.gateway_charge_id(), out.gateway_charge_id());
    assert_eq!(s.captures(), 2);
    assert_eq!(s.tokens_issued(), 1);
}

#[tokio::test]
async fn the_same_key_with_other_parameters_is_refused_for_good() {
    let s = stand_in().await;
    let g = gateway(&s);
    g.charge(charge("charge-k", "vault_ok", 100)).await.unwrap();
    let e = g
        .charge(charge("charge-k", "vault_ok", 200))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    assert_eq!(s.captures(), 1);
}

#[tokio::test]
async fn amounts_are_sent_with_the_currency_decimals() {
    let s = stand_in().await;
    let g = gateway(&s);
    let cases = [
        (Money::new(1999, Currency::USD), "USD", "19.99"),
        (Money::new(5, Currency::EUR), "EUR", "0.05"),
        (Money::new(500, Currency::JPY), "JPY", "500"),
        (Money::new(1234, Currency::KWD), "KWD", "1.234"),
    ];
    for (i, (money, code, value)) in cases.into_iter().enumerate() {
        let out = g
            .charge(charge_in(&format!("charge-m{i}"), "vault_ok", money))
            .await;
        assert!(
            out.as_ref().is_ok_and(ChargeOutcome::is_succeeded),
            "{out:?}"
        );
        let capture = s.last_capture().unwrap();
        assert_eq!(
            capture["amount"],
            json!({ "currency_code": code, "value": value })
        );
        assert_eq!(
            capture["seller_receivable_breakdown"]["gross_amount"]["value"],
            value
        );
    }
    // Nothing is sent for an amount PayPal cannot take.
    let before = s.requests().len();
    let e = g
        .charge(charge("charge-z", "vault_ok", 0))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    assert_eq!(s.requests().len(), before);
}

#[tokio::test]
async fn declines_map_to_our_failure_codes() {
    let s = stand_in().await;
    let g = gateway(&s);
    let cases = [
        ("vault_declined", FailureCode::CardDeclined),
        ("vault_refused", FailureCode::CardDeclined),
        (
            "vault_action_required",
            FailureCode::Other("authentication_required".into()),
        ),
        (
            "vault_cannot_pay",
            FailureCode::Other("payer_cannot_pay".into()),
        ),
        ("vault_capture_declined", FailureCode::CardDeclined),
    ];
    for (i, (vault, want)) in cases.into_iter().enumerate() {
        match g.charge(charge(&format!("charge-d{i}"), vault, 700)).await {
            Ok(ChargeOutcome::Declined {
                failure_code,
                gateway_charge_id,
                message,
            }) => {
                assert_eq!(failure_code, want, "{vault}");
                assert!(
                    !gateway_charge_id.is_empty() && !message.is_empty(),
                    "{vault}"
                );
            }
            other => panic!("{vault}: {other:?}"),
        }
    }
    assert_eq!(s.captures(), 0);
    // The declined capture is PayPal's (a webhook will say PAYMENT.CAPTURE.DENIED).
    assert_eq!(s.last_capture().unwrap()["status"], "DECLINED");
    // A retry of a decline gets the same decline, and nothing more is captured.
    let again = g.charge(charge("charge-d0", "vault_declined", 700)).await;
    assert!(
        matches!(again, Ok(ChargeOutcome::Declined { .. })),
        "{again:?}"
    );
    // An unknown vault id is a final refusal, not a decline; a malformed one is never sent.
    for vault in ["vault_nope", "tok/../../v1"] {
        let e = g.charge(charge("charge-x", vault, 700)).await.unwrap_err();
        assert!(
            matches!(e, GatewayError::InvalidRequest(_)),
            "{vault}: {e:?}"
        );
    }
    assert_eq!(s.captures(), 0);
}

#[tokio::test]
async fn a_pending_capture_is_not_final_yet() {
    let s = stand_in().await;
    let g = gateway(&s);
    let mut ids = Vec::new();
    for _ in 0..2 {
        match g.charge(charge("charge-p", "vault_pending", 800)).await {
            Ok(ChargeOutcome::Accepted { gateway_charge_id }) => ids.push(gateway_charge_id),
            other => panic!("{other:?}"),
        }
    }
    let capture = s.last_capture().unwrap();
    assert_eq!(
        ids,
        [capture["id"].as_str().unwrap(); 2],
        "the same capture, replayed"
    );
    assert_eq!(capture["status"], "PENDING");
    assert_eq!(capture["status_details"]["reason"], "PENDING_REVIEW");
    assert_eq!(capture["custom_id"], "charge-p");
    assert_eq!(s.captures(), 0);
    // One order and one capture attempt, replayed.
    let captures = api_requests(&s)
        .into_iter()
        .filter(|(_, p, _)| p.ends_with("/capture"))
        .count();
    assert_eq!(captures, 2);
}

#[tokio::test]
async fn a_5xx_is_retryable_and_the_retry_under_the_same_key_charges_once() {
    let s = stand_in().await;
    let g = gateway(&s);
    // Before PayPal created the order.
    s.fail_before_acting(1);
    let e = g
        .charge(charge("charge-r1", "vault_ok", 300))
        .await
        .unwrap_err();
    assert!(
        matches!(e, GatewayError::Unavailable(_)) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(s.captures(), 0);
    let first = g
        .charge(charge("charge-r1", "vault_ok", 300))
        .await
        .unwrap();
    assert!(first.is_succeeded());
    assert_eq!(s.captures(), 1);
    // After PayPal acted, at each step: the order's answer is lost, then the capture's.
    s.fail_after_acting(2);
    let e = g
        .charge(charge("charge-r2", "vault_ok", 300))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(s.captures(), 1);
    let e = g
        .charge(charge("charge-r2", "vault_ok", 300))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(s.captures(), 2);
    let out = g
        .charge(charge("charge-r2", "vault_ok", 300))
        .await
        .unwrap();
    assert!(out.is_succeeded());
    assert_eq!(s.captures(), 2);
    assert_eq!(s.last_capture().unwrap()["id"], out.gateway_charge_id());
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_and_the_outcome_is_found_by_asking_again() {
    let s = stand_in().await;
    let g = gateway_with(&s, SECRET, Duration::from_millis(200));
    g.ping().await.unwrap();
    // The request waits before PayPal acts.
    s.set_delay(Duration::from_millis(600));
    let e = g
        .charge(charge("charge-t1", "vault_ok", 300))
        .await
        .unwrap_err();
    assert_eq!(e, GatewayError::Timeout);
    s.set_delay(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        g.charge(charge("charge-t1", "vault_ok", 300))
            .await
            .unwrap()
            .is_succeeded()
    );
    assert_eq!(s.captures(), 1);
    // PayPal acts at once, and its answer comes too late.
    s.set_answer_delay(Duration::from_millis(600));
    let e = g
        .charge(charge("charge-t2", "vault_ok", 300))
        .await
        .unwrap_err();
    assert_eq!(e, GatewayError::Timeout);
    s.set_answer_delay(Duration::ZERO);
    assert!(
        g.charge(charge("charge-t2", "vault_ok", 300))
            .await
            .unwrap()
            .is_succeeded()
    );
    assert_eq!(s.captures(), 2);
}

#[tokio::test]
async fn one_token_serves_every_call_and_a_refused_one_is_renewed_once() {
    let s = stand_in().await;
    let g = gateway(&s);
    let out = g
        .charge(charge("charge-o1", "vault_ok", 1000))
        .await
        .unwrap();
    g.refund(refund("refund-o1", out.gateway_charge_id(), 100))
        .await
        .unwrap();
    g.charge(charge("charge-o2", "vault_ok", 1000))
        .await
        .unwrap();
    assert_eq!(s.tokens_issued(), 1);
    // PayPal stops taking the token: the refused call is sent again with a new one.
    s.expire_tokens();
    let before = s.requests().len();
    assert!(
        g.charge(charge("charge-o3", "vault_ok", 1000))
            .await
            .unwrap()
            .is_succeeded()
    );
    assert_eq!(s.tokens_issued(), 2);
    let order = post("/v2/checkout/orders", Some("charge-o3:order"));
    assert_eq!(
        s.requests()[before..before + 3],
        [order.clone(), post("/v1/oauth2/token", None), order]
    );
    assert_eq!(s.captures(), 3);
    // A token is renewed before it expires, without a refusal.
    s.set_token_lifetime(Duration::from_secs(1));
    g.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = s.requests().len();
    g.charge(charge("charge-o4", "vault_ok", 1000))
        .await
        .unwrap();
    assert_eq!(s.tokens_issued(), 4);
    let paths: Vec<String> = s.requests()[before..].iter().map(|r| r.1.clone()).collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert_eq!(paths[0], "/v1/oauth2/token");
}

#[tokio::test]
async fn refunds_are_partial_repeatable_idempotent_and_never_beyond_the_capture() {
    let s = stand_in().await;
    let g = gateway(&s);
    let out = g
        .charge(charge("charge-f", "vault_ok", 1000))
        .await
        .unwrap();
    let capture = out.gateway_charge_id();
    let r1 = g.refund(refund("refund-1", capture, 400)).await.unwrap();
    let refund_path = format!("/v2/payments/captures/{capture}/refund");
    assert_eq!(
        api_requests(&s).last(),
        Some(&post(&refund_path, Some("refund-1")))
    );
    let made = s.refund(&r1.gateway_refund_id).unwrap();
    assert_eq!(
        made["amount"],
        json!({ "currency_code": "USD", "value": "4.00" })
    );
    assert_eq!(made["status"], "COMPLETED");
    assert_eq!(s.capture(capture).unwrap()["status"], "PARTIALLY_REFUNDED");
    // The same key: PayPal's stored refund; with another amount: a reuse of the key.
    assert_eq!(
        g.refund(refund("refund-1", capture, 400)).await.unwrap(),
        r1
    );
    let e = g
        .refund(refund("refund-1", capture, 300))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    // Beyond what is left, then the rest, then nothing more.
    let e = g
        .refund(refund("refund-2", capture, 601))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("REFUND_AMOUNT_EXCEEDED"), "{e}");
    let r3 = g.refund(refund("refund-3", capture, 600)).await.unwrap();
    assert_ne!(r3, r1);
    assert_eq!(s.refunds(), 2);
    assert_eq!(s.capture(capture).unwrap()["status"], "REFUNDED");
    let e = g.refund(refund("refund-4", capture, 1)).await.unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    let e = g
        .refund(refund("refund-5", "8C000000000000099", 1))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    assert_eq!(s.refunds(), 2);
}

fn signed(sig: &str) -> PaypalSignatureHeaders {
    let pairs: Vec<(String, String)> = [
        ("paypal-auth-algo", "SHA256withRSA"),
        (
            "paypal-cert-url",
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
        ),
        (
            "paypal-transmission-id",
            "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
        ),
        ("paypal-transmission-sig", sig),
        ("paypal-transmission-time", "2024-02-03T18:20:15Z"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    PaypalSignatureHeaders::from_pairs(&pairs).unwrap()
}

#[tokio::test]
async fn webhooks_are_verified_by_paypal() {
    let s = stand_in().await;
    let g = gateway(&s);
    g.charge(charge("charge-w", "vault_ok", 1000))
        .await
        .unwrap();
    let event = json!({ "id": "WH-1", "event_version": "1.0", "resource_type": "capture",
        "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": s.last_capture().unwrap() });
    assert_eq!(
        g.verify_webhook("1JE4291016473214C", &signed("valid"), &event)
            .await,
        Ok(true)
    );
    let sent: serde_json::Value = serde_json::from_str(&s.last_verification().unwrap()).unwrap();
    assert_eq!(sent["webhook_event"], event);
    assert_eq!(sent["webhook_id"], "1JE4291016473214C");
    assert_eq!(
        sent["transmission_id"],
        "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
    );
    assert_eq!(
        g.verify_webhook("1JE4291016473214C", &signed("forged"), &event)
            .await,
        Ok(false)
    );
    s.set_valid_signature("c2lnbmF0dXJl");
    assert_eq!(
        g.verify_webhook("W", &signed("valid"), &event).await,
        Ok(false)
    );
    // The delivered bytes reach PayPal unchanged (PayPal checks the signature over them).
    let raw =
        br#"{"id":"WH-2","event_type":"PAYMENT.CAPTURE.COMPLETED","resource":{"b":1,"a":{}}}"#;
    assert_eq!(
        g.verify_webhook_raw("W", &signed("c2lnbmF0dXJl"), raw)
            .await,
        Ok(true)
    );
    let body = s.last_verification().unwrap();
    assert!(body.contains(std::str::from_utf8(raw).unwrap()), "{body}");
    assert_eq!(s.verifications(), 4);
    let e = g
        .verify_webhook_raw("W", &signed("valid"), b"[]")
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    assert_eq!(s.verifications(), 4);
}

#[tokio::test]
async fn ping_tells_whether_paypal_takes_these_credentials() {
    let s = stand_in().await;
    assert_eq!(gateway(&s).ping().await, Ok(()));
    // Our credentials refused: our configuration's fault — the charge must stay pending.
    let bad = gateway_with(&s, "wrong", Duration::from_secs(5));
    assert!(matches!(
        bad.ping().await,
        Err(GatewayError::Unauthorized(_))
    ));
    let e = bad
        .charge(charge("charge-c", "vault_ok", 100))
        .await
        .unwrap_err();
    assert!(
        matches!(e, GatewayError::Unauthorized(_)) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(s.captures(), 0);
    let base = s.base_url().to_string();
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gone = PaypalGateway::new(PaypalConfig {
        api_base: base,
        timeout: Duration::from_secs(2),
        ..PaypalConfig::new(ID, SECRET)
    })
    .unwrap();
    assert!(gone.ping().await.unwrap_err().is_retryable());
    let e = gone
        .charge(charge("charge-g", "vault_ok", 100))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::Unreachable(_)), "{e:?}");
    assert!(e.is_retryable(), "{e:?}");
}

/// Real PayPal is `https`: the client speaks TLS (rustls on ring). Nothing listens on port 9, so
/// the call fails to connect — retryably — instead of failing for want of TLS.
#[tokio::test]
async fn an_https_base_is_spoken_with_tls() {
    let g = PaypalGateway::new(PaypalConfig {
        client_id: "id".into(),
        client_secret: "secret".into(),
        api_base: "https://127.0.0.1:9".into(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let e = g.ping().await.unwrap_err();
    assert!(matches!(e, GatewayError::Unreachable(_)), "{e:?}");
    let text = format!("{e:?}").to_lowercase();
    assert!(!text.contains("scheme") && !text.contains("tls"), "{e:?}");
}
