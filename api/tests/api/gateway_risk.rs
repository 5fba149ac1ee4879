//! Fraud screening on the gateway's own risk level (issue 5, item 5), end to end through the
//! Stripe client and its stand-in: the charge is authorized first (`capture_method=manual`),
//! Radar's `risk_level` screened, then captured (allow), held in review (approve captures,
//! reject cancels), or canceled (block, 402 `fraud_blocked`). Money moves only on capture.

use commands::charge::fraud::{FraudRules, RiskLevel};
use gateways::stand_in::StripeStandIn;
use serde_json::{Value, json};

use crate::support::{Kind, TestApp, spawn_app_stripe_with};

async fn app(kind: Kind, stripe: &StripeStandIn) -> TestApp {
    let rules = FraudRules {
        gateway_risk_review: Some(RiskLevel::Elevated),
        gateway_risk_block: Some(RiskLevel::Highest),
        ..FraudRules::default()
    };
    let configure = move |state: &mut api::state::AppState| {
        state.charges = std::sync::Arc::new(state.charges.with_fraud_rules(rules));
    };
    spawn_app_stripe_with(kind, stripe, Box::new(configure)).await
}

async fn charge(app: &TestApp, token: &str, key: &str) -> reqwest::Response {
    let body = json!({"amount": 5_000, "currency": "usd", "payment_method": token});
    app.post("/payment/process", &body.to_string(), Some(key))
        .await
}

async fn types_of(app: &TestApp, charge_id: &str) -> Vec<String> {
    let stream = ledger::StreamId::new(format!("charge-{charge_id}")).unwrap();
    let events = app.store.read_stream(&stream).await.unwrap();
    events.into_iter().map(|e| e.event_type).collect()
}

/// The stand-in's requests to `path_suffix`, with their idempotency keys.
fn keys_to(stripe: &StripeStandIn, path_suffix: &str) -> Vec<Option<String>> {
    stripe
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "POST" && p.ends_with(path_suffix))
        .map(|(_, _, k)| k)
        .collect()
}

#[tokio::test]
async fn a_normal_risk_authorization_is_captured_at_once() {
    let stripe = StripeStandIn::start().await;
    let app = app(Kind::Sqlite, &stripe).await;
    let r = charge(&app, "pm_card_visa", "normal-1").await;
    let status = r.status();
    let c: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["risk_level"], "normal");
    assert_eq!(c["authorized"], false, "captured: no hold left");
    let id = c["id"].as_str().unwrap();
    assert_eq!(
        types_of(&app, id).await,
        [
            "ChargeRequested",
            "FraudAssessed",
            "ChargeAuthorized",
            "FraudAssessed",
            "ChargeSucceeded"
        ]
    );
    let pi = stripe
        .intent(c["gateway_charge_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(pi["status"], "succeeded");
    assert_eq!(pi["capture_method"], "manual");
    assert_eq!(stripe.succeeded_charges(), 1);
    let key = format!("charge-{id}");
    assert_eq!(keys_to(&stripe, "/v1/payment_intents"), [Some(key.clone())]);
    assert_eq!(
        keys_to(&stripe, "/capture"),
        [Some(format!("{key}:capture"))]
    );
    // The same request again: the recorded answer, nothing more at Stripe.
    let again: Value = charge(&app, "pm_card_visa", "normal-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], c["id"]);
    assert_eq!(stripe.requests().len(), 2);
}

#[tokio::test]
async fn the_highest_risk_is_blocked_and_its_authorization_canceled_without_money_moving() {
    let stripe = StripeStandIn::start().await;
    let app = app(Kind::Postgres, &stripe).await;
    let r = charge(&app, "pm_card_riskLevelHighest", "highest-1").await;
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    let e = &body["error"];
    assert_eq!(e["type"], "card_error", "{body}");
    assert_eq!(e["decline_code"], "fraud_blocked", "{body}");
    let id = e["charge"].as_str().unwrap().to_string();
    let c = app
        .get_ok(&format!(
            "/v1/charges/{id}?min_position={}",
            app.head().await.0
        ))
        .await;
    assert_eq!(c["status"], "failed");
    assert_eq!(c["risk_level"], "highest");
    assert_eq!(c["authorized"], false);
    let pi = stripe
        .intent(c["gateway_charge_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(pi["status"], "canceled", "{pi}");
    assert_eq!(pi["cancellation_reason"], "fraudulent");
    assert_eq!(stripe.succeeded_charges(), 0, "nothing captured");
    assert!(keys_to(&stripe, "/capture").is_empty());
    assert_eq!(
        keys_to(&stripe, "/cancel"),
        [Some(format!("charge-{id}:cancel"))]
    );
    let assessed: Vec<Value> = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "FraudAssessed")
        .map(|e| e.payload)
        .collect();
    assert_eq!(
        assessed.len(),
        2,
        "before the gateway, then on its risk level"
    );
    assert_eq!(assessed[1]["decision"], "block");
    assert_eq!(assessed[1]["rules"], json!(["gateway_risk_highest"]));
    // No money moved: nothing in the journal's cash.
    let tb = app
        .get_ok(&format!(
            "/v1/ledger/trial_balance?min_position={}",
            app.head().await.0
        ))
        .await;
    assert!(!tb.to_string().contains("cash:stripe"), "{tb}");
}

#[tokio::test]
async fn an_elevated_risk_is_held_in_review_approval_captures_it_once_and_rejection_cancels_it() {
    let stripe = StripeStandIn::start().await;
    let app = app(Kind::Postgres, &stripe).await;
    let r = charge(&app, "pm_card_riskLevelElevated", "elevated-1").await;
    assert_eq!(r.status(), 202);
    let held: Value = r.json().await.unwrap();
    assert_eq!(held["status"], "in_review", "{held}");
    assert_eq!(held["authorized"], true);
    assert_eq!(held["risk_level"], "elevated");
    let id = held["id"].as_str().unwrap().to_string();
    let pi_id = held["gateway_charge_id"].as_str().unwrap().to_string();
    assert_eq!(stripe.intent(&pi_id).unwrap()["status"], "requires_capture");
    assert_eq!(stripe.succeeded_charges(), 0, "held, not captured");

    let head = app.head().await.0;
    let open = app
        .get_ok(&format!("/v1/reviews?min_position={head}"))
        .await;
    assert_eq!(open["data"][0]["id"], id.as_str(), "{open}");
    assert_eq!(open["data"][0]["rules"], json!(["gateway_risk_elevated"]));
    assert_eq!(open["data"][0]["risk_level"], "elevated");

    let approved = app
        .post_ok(&format!("/v1/reviews/{id}/approve"), "{}")
        .await;
    assert_eq!(approved["charge_status"], "succeeded", "{approved}");
    assert_eq!(stripe.intent(&pi_id).unwrap()["status"], "succeeded");
    assert_eq!(stripe.succeeded_charges(), 1);
    // Approving again answers the same and captures nothing more.
    let again = app
        .post_ok(&format!("/v1/reviews/{id}/approve"), "{}")
        .await;
    assert_eq!(again["charge_status"], "succeeded");
    assert_eq!(keys_to(&stripe, "/capture").len(), 1);
    assert_eq!(
        types_of(&app, &id).await,
        [
            "ChargeRequested",
            "FraudAssessed",
            "ChargeAuthorized",
            "FraudAssessed",
            "ReviewClosed",
            "ChargeSucceeded"
        ]
    );

    // Another one, rejected: canceled at Stripe, failed here, nothing captured.
    let held: Value = charge(&app, "tok_riskLevelElevated", "elevated-2")
        .await
        .json()
        .await
        .unwrap();
    let id = held["id"].as_str().unwrap().to_string();
    let pi_id = held["gateway_charge_id"].as_str().unwrap().to_string();
    let rejected = app.post_ok(&format!("/v1/reviews/{id}/reject"), "{}").await;
    assert_eq!(rejected["charge_status"], "failed", "{rejected}");
    assert_eq!(rejected["failure_code"], "review_rejected");
    assert_eq!(stripe.intent(&pi_id).unwrap()["status"], "canceled");
    assert_eq!(stripe.succeeded_charges(), 1);
    // Rejected: approving now is a conflict.
    let r = app
        .post(&format!("/v1/reviews/{id}/approve"), "{}", None)
        .await;
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn a_capture_whose_answers_are_lost_is_completed_by_recovery_under_the_same_key() {
    let stripe = StripeStandIn::start().await;
    let app = app(Kind::Sqlite, &stripe).await;
    // Every capture attempt of the request (the first and its two retries) acts or replays,
    // and its answer is lost.
    stripe.fail_after_acting_on("/capture", 3);
    let r = charge(&app, "pm_card_visa", "lost-1").await;
    assert_eq!(r.status(), 202, "outcome unknown: pending");
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["authorized"], true);
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(
        stripe.succeeded_charges(),
        1,
        "Stripe captured at the first attempt"
    );

    // The scan's saved cursor stays before the pending charge: a process resuming there finds
    // it again.
    use commands::charge::recovery::RecoveryScan;
    let mut early = RecoveryScan::new();
    early.catch_up(app.store.as_ref()).await.unwrap();
    assert_eq!(early.pending(), 1);
    let held = early.settled_position();
    let mut resumed = RecoveryScan::new();
    resumed.resume_after(held);
    resumed.catch_up(app.store.as_ref()).await.unwrap();
    assert_eq!(resumed.pending(), 1, "found again after {held:?}");

    let mut scan = RecoveryScan::new();
    app.charge_service()
        .recover(
            app.store.as_ref(),
            &mut scan,
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    let c = app
        .get_ok(&format!(
            "/v1/charges/{id}?min_position={}",
            app.head().await.0
        ))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(stripe.succeeded_charges(), 1, "captured once");
    // Settled: the cursor moves past it, and nothing is pending from there.
    let settled = scan.settled_position();
    assert!(settled > held, "{settled:?} > {held:?}");
    let mut resumed = RecoveryScan::new();
    resumed.resume_after(settled);
    resumed.catch_up(app.store.as_ref()).await.unwrap();
    assert_eq!(resumed.pending(), 0);
    let keys = keys_to(&stripe, "/capture");
    assert_eq!(keys.len(), 4, "three lost answers, then the recovery's");
    assert!(
        keys.iter()
            .all(|k| k.as_deref() == Some(format!("charge-{id}:capture").as_str()))
    );
    assert_eq!(
        keys_to(&stripe, "/v1/payment_intents").len(),
        1,
        "authorized once: recovery did not authorize again"
    );
    let outcomes = types_of(&app, &id)
        .await
        .into_iter()
        .filter(|t| t == "ChargeSucceeded")
        .count();
    assert_eq!(outcomes, 1);
}

#[tokio::test]
async fn a_cancel_whose_answers_are_lost_is_completed_by_recovery_for_blocks_and_rejections() {
    let stripe = StripeStandIn::start().await;
    let app = app(Kind::Postgres, &stripe).await;
    // Blocked: the cancel acts at Stripe, its answers are lost; the charge waits, pending.
    stripe.fail_after_acting_on("/cancel", 3);
    let r = charge(&app, "pm_card_riskLevelHighest", "lost-cancel-1").await;
    assert_eq!(r.status(), 202);
    let blocked: Value = r.json().await.unwrap();
    // Rejected in review: the same.
    let held: Value = charge(&app, "pm_card_riskLevelElevated", "lost-cancel-2")
        .await
        .json()
        .await
        .unwrap();
    let held_id = held["id"].as_str().unwrap().to_string();
    stripe.fail_after_acting_on("/cancel", 3);
    let rejected = app
        .post_ok(&format!("/v1/reviews/{held_id}/reject"), "{}")
        .await;
    assert_eq!(rejected["charge_status"], "pending", "{rejected}");

    let mut scan = commands::charge::recovery::RecoveryScan::new();
    let report = app
        .charge_service()
        .recover(
            app.store.as_ref(),
            &mut scan,
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(report.charges_completed, 2, "{report:?}");
    let head = app.head().await.0;
    for (c, code) in [(&blocked, "fraud_blocked"), (&held, "review_rejected")] {
        let id = c["id"].as_str().unwrap();
        let now = app
            .get_ok(&format!("/v1/charges/{id}?min_position={head}"))
            .await;
        assert_eq!(now["status"], "failed", "{now}");
        assert_eq!(now["failure_code"], code);
        let pi = stripe
            .intent(c["gateway_charge_id"].as_str().unwrap())
            .unwrap();
        assert_eq!(pi["status"], "canceled");
    }
    assert_eq!(stripe.succeeded_charges(), 0);
}

#[tokio::test]
async fn a_hold_captured_at_stripes_dashboard_during_review_is_recorded_when_approved() {
    let stripe = StripeStandIn::start().await;
    let app = app(Kind::Sqlite, &stripe).await;
    let held: Value = charge(&app, "pm_card_riskLevelElevated", "dashboard-1")
        .await
        .json()
        .await
        .unwrap();
    let id = held["id"].as_str().unwrap().to_string();
    let pi = held["gateway_charge_id"].as_str().unwrap().to_string();
    // Someone captures it at Stripe's dashboard (another key).
    let captured = reqwest::Client::new()
        .post(format!(
            "{}v1/payment_intents/{pi}/capture",
            stripe.base_url()
        ))
        .bearer_auth("sk_test_dashboard")
        .header("idempotency-key", "dashboard-capture")
        .send()
        .await
        .unwrap();
    assert_eq!(captured.status(), 200);
    // Approving: our capture is refused (already captured); the lookup finds the money taken.
    let approved = app
        .post_ok(&format!("/v1/reviews/{id}/approve"), "{}")
        .await;
    assert_eq!(approved["charge_status"], "succeeded", "{approved}");
    assert_eq!(
        stripe.succeeded_charges(),
        1,
        "captured once, at the dashboard"
    );
    assert_eq!(keys_to(&stripe, "/capture").len(), 2);
}
