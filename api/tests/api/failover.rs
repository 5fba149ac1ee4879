//! Gateway failover (issue 5, item 3): with `BILLING_GATEWAY_FAILOVER` on, a charge whose gateway
//! cannot be reached at all (no connection: nothing can have happened there) moves to the
//! customer's method at another gateway, recorded as `ChargeFailedOver`; a gateway that answered
//! 5xx may have acted, so the charge stays pending with it; off, nothing moves.

use std::sync::Arc;
use std::time::Duration;

use commands::charge::fraud::{FraudRules, RiskLevel};
use gateways::Gateways;
use gateways::paypal::{PaypalConfig, PaypalGateway};
use gateways::stand_in::{PaypalStandIn, StripeStandIn};
use gateways::stripe::{StripeConfig, StripeGateway};
use serde_json::{Value, json};

use crate::support::{Kind, TestApp, TestGateway, account_balance, spawn_app_gateways};

fn stripe_at(base: &str) -> Arc<StripeGateway> {
    Arc::new(
        StripeGateway::new(StripeConfig {
            secret_key: "sk_test_standin".into(),
            api_base: base.into(),
            timeout: Duration::from_secs(5),
        })
        .unwrap(),
    )
}

async fn app(stripe_base: &str, paypal: &PaypalStandIn, failover: bool) -> TestApp {
    app_screening(stripe_base, paypal, failover, FraudRules::default()).await
}

async fn app_screening(
    stripe_base: &str,
    paypal: &PaypalStandIn,
    failover: bool,
    rules: FraudRules,
) -> TestApp {
    let paypal = Arc::new(
        PaypalGateway::new(PaypalConfig {
            api_base: paypal.base_url().into(),
            timeout: Duration::from_secs(5),
            ..PaypalConfig::new("standin-client", "standin-secret")
        })
        .unwrap(),
    );
    let gateways = Gateways::new(stripe_at(stripe_base)).with(paypal);
    let configure = move |state: &mut api::state::AppState| {
        state.charges = Arc::new(
            state
                .charges
                .with_fraud_rules(rules)
                .with_failover(failover),
        );
    };
    spawn_app_gateways(
        Kind::Postgres,
        Arc::new(TestGateway::default()),
        gateways,
        true,
        Box::new(configure),
    )
    .await
}

/// A customer paying by card at Stripe (default), with a PayPal account besides.
async fn customer(app: &TestApp) -> String {
    let c = app
        .post_ok(
            "/v1/customers",
            &json!({"email": "fo@example.com", "currency": "usd"}).to_string(),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    for pm in [
        // A single-use token: attaching it needs no call to Stripe (down in these tests).
        json!({"gateway": "stripe", "token": "tok_visa", "set_default": true}),
        json!({"gateway": "paypal", "token": "vault_ok_fallback"}),
    ] {
        app.post_ok(
            &format!("/v1/customers/{id}/payment_methods"),
            &pm.to_string(),
        )
        .await;
    }
    id
}

async fn types(app: &TestApp, charge_id: &str) -> Vec<String> {
    let stream = ledger::StreamId::new(format!("charge-{charge_id}")).unwrap();
    app.store
        .read_stream(&stream)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn pay(app: &TestApp, cus: &str, key: &str) -> reqwest::Response {
    let body = json!({"customer_id": cus, "amount": 3000, "currency": "usd"});
    app.post("/v1/charges", &body.to_string(), Some(key)).await
}

/// An address where nothing listens.
async fn closed_port() -> String {
    let gone = StripeStandIn::start().await;
    let base = gone.base_url().to_string();
    drop(gone);
    tokio::time::sleep(Duration::from_millis(50)).await;
    base
}

#[tokio::test]
async fn an_unreachable_gateway_fails_over_to_the_customers_other_gateway() {
    let paypal = PaypalStandIn::start("standin-client", "standin-secret").await;
    let app = app(&closed_port().await, &paypal, true).await;
    let cus = customer(&app).await;
    let r = pay(&app, &cus, "fo-1").await;
    assert_eq!(r.status(), 200);
    let paid: Value = r.json().await.unwrap();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["gateway"], "paypal", "{paid}");
    assert_eq!(paid["payment_method"], "vault_ok_fallback");
    let id = paid["id"].as_str().unwrap();
    assert_eq!(
        types(&app, id).await,
        ["ChargeRequested", "ChargeFailedOver", "ChargeSucceeded"]
    );
    assert_eq!(paypal.captures(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:paypal"), 3000, "{tb}");
    assert_eq!(account_balance(&tb, "usd", "cash:stripe"), 0, "{tb}");
}

#[tokio::test]
async fn a_gateway_that_answered_or_failover_off_keeps_the_charge() {
    let paypal = PaypalStandIn::start("standin-client", "standin-secret").await;
    // Stripe answers 500: it may have acted, so the charge stays with it, pending.
    let stripe = StripeStandIn::start().await;
    stripe.fail_before_acting(100);
    let app_on = app(stripe.base_url(), &paypal, true).await;
    let cus = customer(&app_on).await;
    let r = pay(&app_on, &cus, "fo-2").await;
    assert_eq!(r.status(), 202);
    let pending: Value = r.json().await.unwrap();
    assert_eq!(pending["gateway"], "stripe");
    assert_eq!(
        types(&app_on, pending["id"].as_str().unwrap()).await,
        ["ChargeRequested"]
    );
    // Unreachable, but failover off: pending at Stripe too.
    let app_off = app(&closed_port().await, &paypal, false).await;
    let cus = customer(&app_off).await;
    let r = pay(&app_off, &cus, "fo-3").await;
    assert_eq!(r.status(), 202);
    let pending: Value = r.json().await.unwrap();
    assert_eq!(pending["gateway"], "stripe");
    assert_eq!(paypal.captures(), 0);
}

#[tokio::test]
async fn a_charge_to_be_authorized_at_stripe_is_charged_outright_after_failing_over_to_paypal() {
    let paypal = PaypalStandIn::start("standin-client", "standin-secret").await;
    let rules = FraudRules {
        gateway_risk_review: Some(RiskLevel::Elevated),
        ..FraudRules::default()
    };
    let app = app_screening(&closed_port().await, &paypal, true, rules).await;
    let cus = customer(&app).await;
    let r = pay(&app, &cus, "fo-risk").await;
    let status = r.status();
    let paid: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["gateway"], "paypal", "{paid}");
    assert_eq!(paid["authorized"], false);
    assert_eq!(
        types(&app, paid["id"].as_str().unwrap()).await,
        [
            "ChargeRequested",
            "FraudAssessed",
            "ChargeFailedOver",
            "ChargeSucceeded"
        ]
    );
    assert_eq!(paypal.captures(), 1);
}
