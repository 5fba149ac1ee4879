//! The webhook reactor (issue 5, item 4): Stripe's deliveries, once recorded, become events on
//! our charges with the delivery as their `causation_id` — a charge still waiting for our own
//! call to Stripe is completed by the webhook (out of order), a failure is recorded, refunds made
//! at Stripe's dashboard reach the books, and nothing is applied twice.

use std::time::Duration;

use gateways::stand_in::StripeStandIn;
use ledger::RecordedEvent;
use serde_json::{Value, json};

use crate::support::{Kind, TestApp, WEBHOOK_SECRETS, spawn_app_stripe};
use crate::webhooks::{deliver, event, now, signed};

async fn send(app: &TestApp, id: &str, kind: &str, object: Value) -> Value {
    let body = event(id, kind, object);
    let r = deliver(app, &body, signed(&body, WEBHOOK_SECRETS[0], now())).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn charge_stream(app: &TestApp, charge_id: &str) -> Vec<RecordedEvent> {
    let stream = ledger::StreamId::new(format!("charge-{charge_id}")).unwrap();
    app.store.read_stream(&stream).await.unwrap()
}

fn types(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

/// The id of the recorded `GatewayEventReceived` for Stripe's event `evt`.
async fn received_id(app: &TestApp, evt: &str) -> String {
    let stream = ledger::StreamId::new(format!("gateway_event-stripe-{evt}")).unwrap();
    let events = app.store.read_stream(&stream).await.unwrap();
    assert_eq!(events.len(), 1, "recorded once");
    events[0].event_id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_intent_succeeded_completes_a_charge_whose_own_answer_is_late() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Postgres, &stripe).await;
    stripe.set_answer_delay(Duration::from_millis(1_500));
    let pay =
        {
            let (client, url, key) = (
                app.client.clone(),
                app.url("/payment/process"),
                app.write_key.clone(),
            );
            tokio::spawn(async move {
                client.post(url).bearer_auth(key).header("idempotency-key", "late-1")
                .json(&json!({"amount": 1500, "currency": "usd", "payment_method": "pm_card_visa"}))
                .send().await.unwrap()
            })
        };
    // Stripe charged; its answer to us is on its way; its webhook arrives first.
    let mut intent = None;
    for _ in 0..200 {
        intent = stripe.last_intent();
        if intent.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let intent = intent.expect("Stripe made the PaymentIntent");
    let key = intent["metadata"]["billing_key"]
        .as_str()
        .unwrap()
        .to_string();
    let charge_id = key.strip_prefix("charge-").unwrap().to_string();
    let answer = send(
        &app,
        "evt_late_ok",
        "payment_intent.succeeded",
        intent.clone(),
    )
    .await;
    assert_eq!(answer["duplicate"], false);
    let events = charge_stream(&app, &charge_id).await;
    assert_eq!(types(&events), ["ChargeRequested", "ChargeSucceeded"]);
    assert_eq!(
        events[1].metadata.causation_id.as_deref(),
        Some(received_id(&app, "evt_late_ok").await.as_str())
    );
    assert_eq!(events[1].metadata.actor.as_deref(), Some("reactor:stripe"));
    assert_eq!(events[1].payload["gateway_charge_id"], intent["id"]);

    // Our own answer lands on a charge that is complete: the client gets it, nothing is added.
    let paid = pay.await.unwrap();
    assert_eq!(paid.status(), 200);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["id"], charge_id.as_str());
    assert_eq!(paid["status"], "succeeded");
    // The same delivery again, and the same event again under a new delivery id: nothing new.
    assert_eq!(
        send(
            &app,
            "evt_late_ok",
            "payment_intent.succeeded",
            intent.clone()
        )
        .await["duplicate"],
        true
    );
    send(&app, "evt_late_ok_2", "payment_intent.succeeded", intent).await;
    assert_eq!(
        types(&charge_stream(&app, &charge_id).await),
        ["ChargeRequested", "ChargeSucceeded"]
    );
    assert_eq!(stripe.succeeded_charges(), 1);
    app.assert_books_balance().await;
    // The read model of deliveries: each with what it caused.
    let head = app.head().await.0;
    let cause = received_id(&app, "evt_late_ok").await;
    let got = app
        .get_ok(&format!("/v1/gateway_events/{cause}?min_position={head}"))
        .await;
    assert_eq!(got["status"], "applied", "{got}");
    assert_eq!(got["gateway_event_id"], "evt_late_ok");
    assert_eq!(got["caused"][0]["event_type"], "ChargeSucceeded", "{got}");
    let list = app
        .get_ok(&format!(
            "/v1/gateway_events?min_position={head}&status=received"
        ))
        .await;
    let ids: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["gateway_event_id"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!("evt_late_ok_2")],
        "the second delivery changed nothing: {list}"
    );
}

#[tokio::test]
async fn payment_failed_settles_a_pending_charge_as_failed() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Sqlite, &stripe).await;
    // Stripe is down for our call: the charge stays pending.
    stripe.fail_before_acting(100);
    let r = app
        .post(
            "/payment/process",
            r#"{"amount":900,"currency":"eur","payment_method":"pm_card_visa"}"#,
            Some("fail-1"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let pending: Value = r.json().await.unwrap();
    let charge_id = pending["id"].as_str().unwrap();
    let intent = json!({"id": "pi_3Failed000000000001", "object": "payment_intent", "amount": 900,
        "currency": "eur", "status": "requires_payment_method",
        "metadata": {"billing_key": format!("charge-{charge_id}")},
        "last_payment_error": {"type": "card_error", "code": "card_declined",
            "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."}});
    send(
        &app,
        "evt_failed_1",
        "payment_intent.payment_failed",
        intent,
    )
    .await;
    let events = charge_stream(&app, charge_id).await;
    assert_eq!(types(&events), ["ChargeRequested", "ChargeFailed"]);
    assert_eq!(events[1].payload["failure_code"], "insufficient_funds");
    assert_eq!(
        events[1].metadata.causation_id.as_deref(),
        Some(received_id(&app, "evt_failed_1").await.as_str())
    );
}

#[tokio::test]
async fn charge_refunded_confirms_ours_and_books_refunds_made_at_stripe() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Postgres, &stripe).await;
    let r = app
        .post(
            "/payment/process",
            r#"{"amount":1000,"currency":"usd","payment_method":"pm_card_visa"}"#,
            Some("ref-1"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let paid: Value = r.json().await.unwrap();
    let charge_id = paid["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/v1/refunds",
            &json!({"charge_id": charge_id, "amount": 300}).to_string(),
            Some("ref-r1"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let pi = stripe.last_intent().unwrap();
    let charge = |refunded: i64| {
        json!({"id": pi["latest_charge"], "object": "charge", "amount": 1000,
        "amount_refunded": refunded, "refunded": refunded == 1000, "currency": "usd",
        "status": "succeeded", "payment_intent": pi["id"], "metadata": {},
        "refunds": {"object": "list", "data": [], "has_more": false}})
    };
    // Ours, reported back: nothing new.
    send(&app, "evt_ref_300", "charge.refunded", charge(300)).await;
    assert_eq!(charge_stream(&app, &charge_id).await.len(), 4);
    // 500 more refunded at Stripe's dashboard: booked as a refund of the charge.
    send(&app, "evt_ref_800", "charge.refunded", charge(800)).await;
    let events = charge_stream(&app, &charge_id).await;
    assert_eq!(
        types(&events),
        [
            "ChargeRequested",
            "ChargeSucceeded",
            "RefundRequested",
            "RefundSucceeded",
            "RefundRequested",
            "RefundSucceeded"
        ]
    );
    assert_eq!(events[4].payload["amount"], 500);
    let cause = received_id(&app, "evt_ref_800").await;
    assert!(
        events[4..]
            .iter()
            .all(|e| e.metadata.causation_id.as_deref() == Some(cause.as_str()))
    );
    // A report beyond the charge is not believed.
    send(&app, "evt_ref_big", "charge.refunded", charge(5_000)).await;
    assert_eq!(charge_stream(&app, &charge_id).await.len(), 6);
    let got = app
        .get_ok(&format!(
            "/v1/charges/{charge_id}?min_position={}",
            events[5].position.0
        ))
        .await;
    assert_eq!(got["amount_refunded"], 800, "{got}");
    app.assert_books_balance().await;
}

#[tokio::test]
async fn disputes_withdraw_and_reinstate_funds_in_the_books_in_any_delivery_order() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Postgres, &stripe).await;
    let mut charges = Vec::new();
    for key in ["dp-won", "dp-lost"] {
        let r = app
            .post(
                "/payment/process",
                r#"{"amount":2000,"currency":"usd","payment_method":"pm_card_visa"}"#,
                Some(key),
            )
            .await;
        assert_eq!(r.status(), 200);
        let paid: Value = r.json().await.unwrap();
        charges.push((
            paid["id"].as_str().unwrap().to_string(),
            stripe.last_intent().unwrap(),
        ));
    }
    let dispute = |id: &str, pi: &Value, status: &str| {
        json!({"id": id, "object": "dispute",
        "amount": 2000, "currency": "usd", "charge": pi["latest_charge"], "payment_intent": pi["id"],
        "reason": "fraudulent", "status": status, "metadata": {}, "livemode": false})
    };
    let (won, won_pi) = &charges[0];
    let (lost, lost_pi) = &charges[1];
    // Won: opened (funds withdrawn), then closed won (funds back).
    send(
        &app,
        "evt_dp1_created",
        "charge.dispute.created",
        dispute("dp_1", won_pi, "needs_response"),
    )
    .await;
    send(
        &app,
        "evt_dp1_created_again",
        "charge.dispute.created",
        dispute("dp_1", won_pi, "needs_response"),
    )
    .await;
    send(
        &app,
        "evt_dp1_closed",
        "charge.dispute.closed",
        dispute("dp_1", won_pi, "won"),
    )
    .await;
    assert_eq!(
        types(&charge_stream(&app, won).await)[2..],
        ["ChargeDisputed", "DisputeClosed"]
    );
    // Lost, with the close delivered first: the dispute is opened and closed at once.
    send(
        &app,
        "evt_dp2_closed",
        "charge.dispute.closed",
        dispute("dp_2", lost_pi, "lost"),
    )
    .await;
    send(
        &app,
        "evt_dp2_created",
        "charge.dispute.created",
        dispute("dp_2", lost_pi, "needs_response"),
    )
    .await;
    let events = charge_stream(&app, lost).await;
    assert_eq!(types(&events)[2..], ["ChargeDisputed", "DisputeClosed"]);
    let got = app
        .get_ok(&format!(
            "/v1/charges/{lost}?min_position={}",
            events[3].position.0
        ))
        .await;
    assert_eq!(got["disputed"], true, "{got}");
    let tb = app.assert_books_balance().await;
    assert_eq!(
        crate::support::account_balance(&tb, "usd", "disputes"),
        2000,
        "{tb}"
    );
    assert_eq!(
        crate::support::account_balance(&tb, "usd", "cash:stripe"),
        2000,
        "{tb}"
    );
}

#[tokio::test]
async fn an_inquiry_moves_no_money_until_it_escalates_to_a_chargeback() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Sqlite, &stripe).await;
    let r = app
        .post(
            "/payment/process",
            r#"{"amount":3000,"currency":"usd","payment_method":"pm_card_visa"}"#,
            Some("inquiry-1"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let paid: Value = r.json().await.unwrap();
    let id = paid["id"].as_str().unwrap().to_string();
    let pi = stripe.last_intent().unwrap();
    let dispute = |status: &str| {
        json!({"id": "dp_inq", "object": "dispute", "amount": 3000, "currency": "usd",
        "charge": pi["latest_charge"], "payment_intent": pi["id"], "reason": "fraudulent",
        "status": status, "metadata": {}, "livemode": false})
    };
    let balances = |tb: &Value| {
        (
            crate::support::account_balance(tb, "usd", "cash:stripe"),
            crate::support::account_balance(tb, "usd", "disputes"),
        )
    };
    send(
        &app,
        "evt_inq_created",
        "charge.dispute.created",
        dispute("warning_needs_response"),
    )
    .await;
    let tb = app.assert_books_balance().await;
    assert_eq!(balances(&tb), (3000, 0), "an inquiry: {tb}");
    send(
        &app,
        "evt_inq_withdrawn",
        "charge.dispute.funds_withdrawn",
        dispute("needs_response"),
    )
    .await;
    // Delivered again, and the update that says the same: withdrawn once.
    send(
        &app,
        "evt_inq_withdrawn",
        "charge.dispute.funds_withdrawn",
        dispute("needs_response"),
    )
    .await;
    send(
        &app,
        "evt_inq_updated",
        "charge.dispute.updated",
        dispute("under_review"),
    )
    .await;
    send(
        &app,
        "evt_inq_lost",
        "charge.dispute.closed",
        dispute("lost"),
    )
    .await;
    assert_eq!(
        types(&charge_stream(&app, &id).await)[2..],
        ["ChargeDisputed", "DisputeFundsWithdrawn", "DisputeClosed"]
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(balances(&tb), (0, 3000), "escalated, then lost: {tb}");
}

#[tokio::test]
async fn past_its_idempotency_window_a_stripe_charge_is_looked_up_not_made_again() {
    use commands::clock::FixedClock;
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Sqlite, &stripe).await;
    let recover_at = |hours: i64| {
        let at = chrono::Utc::now() + chrono::Duration::hours(hours);
        (
            app.charge_service()
                .with_clock(std::sync::Arc::new(FixedClock(at))),
            at,
        )
    };
    let pay = |key: &'static str| {
        let body = r#"{"amount":700,"currency":"usd","payment_method":"pm_card_visa"}"#;
        app.post("/payment/process", body, Some(key))
    };
    let intents_created = || {
        stripe
            .requests()
            .iter()
            .filter(|(m, p, _)| m == "POST" && p == "/v1/payment_intents")
            .count()
    };
    // A: Stripe charged but every answer was lost; a day later its key may be forgotten, so the
    // charge is found by our key in its search, not made again.
    stripe.fail_after_acting(1);
    stripe.fail_replays(2);
    let r = pay("window-a").await;
    assert_eq!(r.status(), 202);
    let a: Value = r.json().await.unwrap();
    assert_eq!(stripe.succeeded_charges(), 1);
    let posts = intents_created();
    let (late, at) = recover_at(24);
    let mut scan = commands::charge::recovery::RecoveryScan::new();
    late.recover(app.store.as_ref(), &mut scan, at)
        .await
        .unwrap();
    assert_eq!(intents_created(), posts, "looked up, not made again");
    assert!(
        stripe
            .requests()
            .iter()
            .any(|(_, p, _)| p == "/v1/payment_intents/search")
    );
    assert_eq!(stripe.succeeded_charges(), 1);
    let id = a["id"].as_str().unwrap();
    assert_eq!(
        types(&charge_stream(&app, id).await),
        ["ChargeRequested", "ChargeSucceeded"]
    );
    // B: Stripe never saw the request: the search finds nothing, and the charge is made then.
    stripe.fail_before_acting(100);
    let r = pay("window-b").await;
    assert_eq!(r.status(), 202);
    let b: Value = r.json().await.unwrap();
    stripe.fail_before_acting(0);
    let (late, at) = recover_at(24);
    let mut scan = commands::charge::recovery::RecoveryScan::new();
    late.recover(app.store.as_ref(), &mut scan, at)
        .await
        .unwrap();
    assert_eq!(stripe.succeeded_charges(), 2);
    let id = b["id"].as_str().unwrap();
    assert_eq!(
        types(&charge_stream(&app, id).await),
        ["ChargeRequested", "ChargeSucceeded"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_reported_before_the_charge_is_settled_waits_for_it() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Postgres, &stripe).await;
    stripe.set_answer_delay(Duration::from_millis(1_500));
    let pay =
        {
            let (client, url, key) = (
                app.client.clone(),
                app.url("/payment/process"),
                app.write_key.clone(),
            );
            tokio::spawn(async move {
                client.post(url).bearer_auth(key).header("idempotency-key", "early-refund")
                .json(&json!({"amount": 1000, "currency": "usd", "payment_method": "pm_card_visa"}))
                .send().await.unwrap()
            })
        };
    let mut pi = None;
    for _ in 0..200 {
        pi = stripe.last_intent();
        if pi.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pi = pi.expect("Stripe made the PaymentIntent");
    // Refunded at Stripe's dashboard before our own answer arrived: too early to book.
    let charge = json!({"id": pi["latest_charge"], "object": "charge", "amount": 1000,
        "amount_refunded": 400, "refunded": false, "currency": "usd", "status": "succeeded",
        "payment_intent": pi["id"], "metadata": {}, "refunds": {"object": "list", "data": []}});
    send(&app, "evt_early_refund", "charge.refunded", charge).await;
    assert_eq!(app.reactor.catch_up().await.unwrap(), 1);
    assert_eq!(app.reactor.deferred().await, 1, "waiting for its charge");
    // The cursor a process saves stays before it: a process starting there meets it again.
    let received = app
        .all_events()
        .await
        .into_iter()
        .find(|e| e.event_type == "GatewayEventReceived")
        .unwrap()
        .position;
    let held = app.reactor.settled_position().await;
    assert!(held < received, "{held:?} < {received:?}");
    let fresh = || commands::reactor::Reactor::new(app.charge_service(), app.store.clone());
    let restarted = fresh();
    restarted.resume_after(held).await;
    assert_eq!(restarted.catch_up().await.unwrap(), 1, "read again");
    let paid: Value = pay.await.unwrap().json().await.unwrap();
    let id = paid["id"].as_str().unwrap();
    assert_eq!(
        types(&charge_stream(&app, id).await),
        ["ChargeRequested", "ChargeSucceeded"]
    );
    // The next pass books it.
    app.reactor.catch_up().await.unwrap();
    assert_eq!(app.reactor.deferred().await, 0);
    let settled = app.reactor.settled_position().await;
    assert!(settled >= received, "{settled:?}");
    let restarted = fresh();
    restarted.resume_after(settled).await;
    assert_eq!(restarted.catch_up().await.unwrap(), 0, "nothing read again");
    let events = charge_stream(&app, id).await;
    assert_eq!(
        types(&events),
        [
            "ChargeRequested",
            "ChargeSucceeded",
            "RefundRequested",
            "RefundSucceeded"
        ]
    );
    assert_eq!(events[2].payload["amount"], 400);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_refund_is_never_asked_again_past_its_idempotency_window() {
    use commands::clock::FixedClock;
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Sqlite, &stripe).await;
    let body = r#"{"amount":900,"currency":"usd","payment_method":"pm_card_visa"}"#;
    let paid: Value = app
        .post("/payment/process", body, Some("rw-1"))
        .await
        .json()
        .await
        .unwrap();
    let id = paid["id"].as_str().unwrap().to_string();
    stripe.fail_before_acting(100);
    let r = app
        .post(
            "/v1/refunds",
            &json!({"charge_id": id, "amount": 300}).to_string(),
            Some("rw-r"),
        )
        .await;
    assert_eq!(r.status(), 202, "the refund's outcome is unknown");
    stripe.fail_before_acting(0);
    let refund_posts = || {
        stripe
            .requests()
            .iter()
            .filter(|(m, p, _)| m == "POST" && p == "/v1/refunds")
            .count()
    };
    let posts = refund_posts();
    let recover_at = |hours: i64| {
        let at = chrono::Utc::now() + chrono::Duration::hours(hours);
        (
            app.charge_service()
                .with_clock(std::sync::Arc::new(FixedClock(at))),
            at,
        )
    };
    let (late, at) = recover_at(24);
    let mut scan = commands::charge::recovery::RecoveryScan::new();
    late.recover(app.store.as_ref(), &mut scan, at)
        .await
        .unwrap();
    assert_eq!(refund_posts(), posts, "not asked past the window");
    let (soon, at) = recover_at(1);
    let mut scan = commands::charge::recovery::RecoveryScan::new();
    soon.recover(app.store.as_ref(), &mut scan, at)
        .await
        .unwrap();
    assert_eq!(stripe.refunds(), 1);
    assert_eq!(
        types(&charge_stream(&app, &id).await),
        [
            "ChargeRequested",
            "ChargeSucceeded",
            "RefundRequested",
            "RefundSucceeded"
        ]
    );
}

#[tokio::test]
async fn events_about_nothing_of_ours_or_of_unknown_types_are_recorded_and_left_alone() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Sqlite, &stripe).await;
    let before = app.head().await;
    let stranger = json!({"id": "pi_3NotOurs00000000001", "object": "payment_intent", "amount": 5,
        "currency": "usd", "status": "succeeded", "metadata": {}});
    send(&app, "evt_stranger", "payment_intent.succeeded", stranger).await;
    send(
        &app,
        "evt_other",
        "customer.created",
        json!({"id": "cus_1", "object": "customer"}),
    )
    .await;
    let new: Vec<_> = app
        .all_events()
        .await
        .into_iter()
        .filter(|e| e.position > before)
        .collect();
    assert_eq!(
        types(&new),
        ["GatewayEventReceived", "GatewayEventReceived"]
    );
}
