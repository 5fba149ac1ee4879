//! The real `billing` binary charging through Stripe (`STRIPE_SECRET_KEY`, `STRIPE_API_BASE`)
//! at the Stripe stand-in (issue 5, items 1, 6 and 7): charges and refunds go out as
//! PaymentIntents and refunds under our idempotency keys; `POST /payment/stripe/test` reports
//! the mode and reachability; and a process killed with SIGKILL after Stripe acted but before the
//! outcome was appended completes the charge (and the refund) on restart — one Stripe charge, one
//! outcome event.

use std::time::{Duration, Instant};

use gateways::stand_in::StripeStandIn;
use ledger::RecordedEvent;
use ledger::store::AnyStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::crash::{
    Server, charge_events, free_port, next_line, open_store, types, wait_until_serving,
};
use crate::support::{Kind, TempDir, TestDb};

const DEADLINE: Duration = Duration::from_secs(20);

struct Running {
    child: Child,
    base: String,
    admin_key: String,
}

fn server(dir: &TempDir, db: Option<&TestDb>, stripe: &StripeStandIn) -> Server {
    Server {
        data_dir: dir.path().to_path_buf(),
        database_url: db.map(|d| d.url.clone()),
        env: vec![
            ("STRIPE_SECRET_KEY".into(), "sk_test_standin".into()),
            ("STRIPE_API_BASE".into(), stripe.base_url().into()),
            ("STRIPE_TIMEOUT_MS".into(), "30000".into()),
        ],
    }
}

/// Starts the server; the first start prints the admin key, later ones reuse `admin_key`.
async fn start(server: &Server, client: &reqwest::Client, admin_key: Option<&str>) -> Running {
    let port = free_port();
    let mut child = server.start(port, false);
    let admin_key = match admin_key {
        Some(k) => k.to_string(),
        None => {
            let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
            let notice = next_line(&mut stdout).await;
            assert!(notice.contains("admin key"), "{notice}");
            next_line(&mut stdout).await
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    wait_until_serving(client, &base, &mut child).await;
    Running {
        child,
        base,
        admin_key,
    }
}

async fn post(
    client: &reqwest::Client,
    r: &Running,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    client
        .post(format!("{}{path}", r.base))
        .bearer_auth(&r.admin_key)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("answered")
}

/// Waits until `done` holds for the charge events of `stream`.
async fn wait_for_stream(
    store: &AnyStore,
    stream: &str,
    done: impl Fn(&[RecordedEvent]) -> bool,
) -> Vec<RecordedEvent> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let events: Vec<_> = charge_events(store)
            .await
            .into_iter()
            .filter(|e| e.stream_id.as_str() == stream)
            .collect();
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "not within {DEADLINE:?}: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn client() -> reqwest::Client {
    crate::support::http_client(Some(Duration::from_secs(60)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_refunds_and_the_stripe_check_go_to_stripe() {
    let stripe = StripeStandIn::start().await;
    let dir = TempDir::new();
    let server = server(&dir, None, &stripe);
    let client = client();
    let mut r = start(&server, &client, None).await;

    let check = post(
        &client,
        &r,
        "/payment/stripe/test",
        "check-1",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(check.status(), 200);
    let check: serde_json::Value = check.json().await.unwrap();
    assert_eq!(check["mode"], "test", "{check}");
    assert_eq!(check["gateway"], "stripe", "{check}");
    assert_eq!(check["reachable"], true, "{check}");

    let paid = post(
        &client,
        &r,
        "/payment/process",
        "order-1",
        serde_json::json!({"amount": 2500, "currency": "eur", "payment_method": "pm_card_visa"}),
    )
    .await;
    assert_eq!(paid.status(), 200);
    let paid: serde_json::Value = paid.json().await.unwrap();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["gateway"], "stripe", "{paid}");
    assert_eq!(stripe.succeeded_charges(), 1);
    let intents: Vec<_> = stripe
        .requests()
        .into_iter()
        .filter(|(_, path, _)| path == "/v1/payment_intents")
        .collect();
    let charge_id = paid["id"].as_str().unwrap();
    assert_eq!(intents.len(), 1);
    assert_eq!(
        intents[0].2.as_deref(),
        Some(format!("charge-{charge_id}").as_str()),
        "the idempotency key is derived from our charge id"
    );

    let declined = post(&client, &r, "/payment/process", "order-2",
        serde_json::json!({"amount": 2500, "currency": "eur", "payment_method": "pm_card_chargeDeclinedInsufficientFunds"})).await;
    assert_eq!(declined.status(), 402);
    let declined: serde_json::Value = declined.json().await.unwrap();
    assert_eq!(declined["error"]["type"], "card_error", "{declined}");
    assert!(
        declined.to_string().contains("insufficient_funds"),
        "{declined}"
    );

    let refund = post(
        &client,
        &r,
        "/v1/refunds",
        "refund-1",
        serde_json::json!({"charge_id": charge_id, "amount": 1000}),
    )
    .await;
    assert_eq!(refund.status(), 200);
    let refund: serde_json::Value = refund.json().await.unwrap();
    assert_eq!(refund["status"], "succeeded", "{refund}");
    assert_eq!(stripe.refunds(), 1);

    // Stripe down: the check says so, a charge stays pending (202) and is completed later.
    stripe.fail_before_acting(100);
    let check = post(
        &client,
        &r,
        "/payment/stripe/test",
        "check-2",
        serde_json::json!({}),
    )
    .await;
    let check: serde_json::Value = check.json().await.unwrap();
    assert_eq!(
        check["reachable"], true,
        "reads are not failed by fail_before_acting: {check}"
    );
    let pending = post(
        &client,
        &r,
        "/payment/process",
        "order-3",
        serde_json::json!({"amount": 700, "currency": "eur", "payment_method": "pm_card_visa"}),
    )
    .await;
    assert_eq!(pending.status(), 202);
    stripe.fail_before_acting(0);
    let store = open_store(Kind::Sqlite, &server).await;
    let pending: serde_json::Value = pending.json().await.unwrap();
    let stream = format!("charge-{}", pending["id"].as_str().unwrap());
    let events = wait_for_stream(&store, &stream, |e| e.len() == 2).await;
    assert_eq!(types(&events), ["ChargeRequested", "ChargeSucceeded"]);
    assert_eq!(stripe.succeeded_charges(), 2);
    r.child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_after_stripe_charged_then_restart_completes_the_charge_once() {
    sigkill_between_stripe_and_the_outcome(Kind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_after_stripe_charged_then_restart_completes_the_charge_once() {
    sigkill_between_stripe_and_the_outcome(Kind::Sqlite).await;
}

async fn sigkill_between_stripe_and_the_outcome(kind: Kind) {
    let stripe = StripeStandIn::start().await;
    let dir = TempDir::new();
    let db = match kind {
        Kind::Sqlite => None,
        Kind::Postgres => Some(TestDb::create().await),
    };
    let server = server(&dir, db.as_ref(), &stripe);
    let client = client();
    let mut first = start(&server, &client, None).await;
    let store = open_store(kind, &server).await;

    // 1. Stripe charges at once and answers late; the process is killed meanwhile.
    stripe.set_answer_delay(Duration::from_secs(30));
    let body =
        serde_json::json!({"amount": 4200, "currency": "usd", "payment_method": "pm_card_visa"});
    let pay = {
        let (client, base, key, body) = (
            client.clone(),
            first.base.clone(),
            first.admin_key.clone(),
            body.clone(),
        );
        tokio::spawn(async move {
            client
                .post(format!("{base}/payment/process"))
                .bearer_auth(key)
                .header("idempotency-key", "kill-order-1")
                .json(&body)
                .send()
                .await
        })
    };
    wait_until(|| stripe.succeeded_charges() == 1).await;
    first.child.start_kill().expect("SIGKILL");
    first.child.wait().await.unwrap();
    assert!(
        pay.await.unwrap().is_err(),
        "the killed process never answered"
    );
    stripe.set_answer_delay(Duration::ZERO);
    let events = charge_events(&store).await;
    assert_eq!(types(&events), ["ChargeRequested"], "{events:#?}");
    let stream = events[0].stream_id.as_str().to_string();

    // 2. Restart: recovery asks Stripe again with the same key and records the outcome.
    let mut second = start(&server, &client, Some(&first.admin_key)).await;
    let events = wait_for_stream(&store, &stream, |e| e.len() >= 2).await;
    assert_eq!(types(&events), ["ChargeRequested", "ChargeSucceeded"]);
    assert_eq!(events[1].metadata.actor.as_deref(), Some("recovery"));
    assert_eq!(stripe.succeeded_charges(), 1, "one charge at Stripe");
    let keys: Vec<_> = stripe
        .requests()
        .into_iter()
        .filter(|(_, p, _)| p == "/v1/payment_intents")
        .map(|(_, _, k)| k)
        .collect();
    assert_eq!(keys.len(), 2, "asked twice");
    assert_eq!(keys[0], keys[1], "with the same key");

    // 3. The same for a refund.
    let charge_id = stream.trim_start_matches("charge-").to_string();
    stripe.set_answer_delay(Duration::from_secs(30));
    let refund = {
        let (client, base, key, charge_id) = (
            client.clone(),
            second.base.clone(),
            second.admin_key.clone(),
            charge_id.clone(),
        );
        tokio::spawn(async move {
            client
                .post(format!("{base}/v1/refunds"))
                .bearer_auth(key)
                .header("idempotency-key", "kill-refund-1")
                .json(&serde_json::json!({"charge_id": charge_id, "amount": 1200}))
                .send()
                .await
        })
    };
    wait_until(|| stripe.refunds() == 1).await;
    second.child.start_kill().expect("SIGKILL");
    second.child.wait().await.unwrap();
    assert!(refund.await.unwrap().is_err());
    stripe.set_answer_delay(Duration::ZERO);
    let events = wait_for_stream(&store, &stream, |e| e.len() == 3).await;
    assert_eq!(
        types(&events),
        ["ChargeRequested", "ChargeSucceeded", "RefundRequested"]
    );

    let mut third = start(&server, &client, Some(&first.admin_key)).await;
    let events = wait_for_stream(&store, &stream, |e| e.len() >= 4).await;
    assert_eq!(
        types(&events),
        [
            "ChargeRequested",
            "ChargeSucceeded",
            "RefundRequested",
            "RefundSucceeded"
        ]
    );
    assert_eq!(stripe.refunds(), 1, "one refund at Stripe");
    assert_eq!(stripe.succeeded_charges(), 1);
    // The client's retry of the refund gets the recorded refund.
    let again = post(
        &client,
        &third,
        "/v1/refunds",
        "kill-refund-1",
        serde_json::json!({"charge_id": charge_id, "amount": 1200}),
    )
    .await;
    assert_eq!(again.status(), 200);
    assert_eq!(stripe.refunds(), 1);
    third.child.kill().await.unwrap();
    drop(store);
}

async fn wait_until(cond: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
