//! Billing scenarios over HTTP with test clocks: renewals, trials, proration, dunning, anchors
//! on the 31st, and invoices in JPY and KWD taxed to the minor unit.

use serde_json::{Value, json};

use crate::support::{Kind, TestApp, account_balance, error_of, spawn_app};

pub(crate) async fn clock(app: &TestApp, at: &str) -> String {
    let c = app
        .post_ok("/v1/test_clocks", &json!({"frozen_time": at}).to_string())
        .await;
    c["id"].as_str().unwrap().to_string()
}

pub(crate) async fn advance(app: &TestApp, clock: &str, to: &str) -> Value {
    let path = format!("/v1/test_clocks/{clock}/advance");
    app.post_ok(&path, &json!({"frozen_time": to}).to_string())
        .await
}

/// A customer on `clock` paying with `token`, taxed in `country`.
pub(crate) async fn customer(
    app: &TestApp,
    clock: &str,
    currency: &str,
    country: &str,
    token: &str,
) -> String {
    let body = json!({"email": "finance@example.com", "currency": currency,
        "address": {"country": country}, "test_clock": clock});
    let c = app.post_ok("/v1/customers", &body.to_string()).await;
    let id = c["id"].as_str().unwrap().to_string();
    let pm = json!({"gateway": "sandbox", "token": token, "set_default": true});
    app.post_ok(
        &format!("/v1/customers/{id}/payment_methods"),
        &pm.to_string(),
    )
    .await;
    id
}

pub(crate) async fn plan(app: &TestApp, body: Value) -> String {
    let p = app.post_ok("/v1/plans", &body.to_string()).await;
    p["id"].as_str().unwrap().to_string()
}

pub(crate) async fn subscribe(app: &TestApp, customer: &str, plan: &str, extra: Value) -> Value {
    let mut body = json!({"customer_id": customer, "plan_id": plan});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    app.post_ok("/v1/subscriptions", &body.to_string()).await
}

pub(crate) async fn invoice(app: &TestApp, id: &Value) -> Value {
    app.get_ok(&format!("/v1/invoices/{}", id.as_str().unwrap()))
        .await
}

pub(crate) async fn subscription(app: &TestApp, id: &Value) -> Value {
    app.get_ok(&format!("/v1/subscriptions/{}", id.as_str().unwrap()))
        .await
}

fn events_of(events: &[ledger::RecordedEvent], ty: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event_type == ty)
        .map(|e| e.payload.clone())
        .collect()
}

#[tokio::test]
async fn twelve_monthly_renewals_on_a_31st_anchor_keep_the_day_and_number_invoices_gaplessly() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-01-31T10:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let gold = plan(
        &app,
        json!({"name":"Gold","currency":"usd","amount":2000,"interval":"month"}),
    )
    .await;
    let sub = subscribe(&app, &cus, &gold, json!({})).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_end"], "2026-02-28T10:00:00Z");
    let first = invoice(&app, &sub["latest_invoice"]).await;
    assert_eq!(
        (first["status"].clone(), first["amount_paid"].clone()),
        ("paid".into(), 2000.into())
    );
    assert_eq!(first["number"], "KB-000001");
    assert_eq!(first["billing_reason"], "subscription_create");

    let started = std::time::Instant::now();
    let advanced = advance(&app, &clock, "2027-01-31T10:00:00Z").await;
    eprintln!(
        "a year of monthly renewals advanced in {:?}",
        started.elapsed()
    );
    assert_eq!(advanced["frozen_time"], "2027-01-31T10:00:00Z");

    let sub = subscription(&app, &sub["id"]).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_start"], "2027-01-31T10:00:00Z");
    assert_eq!(sub["current_period_end"], "2027-02-28T10:00:00Z");
    let events = app.all_events().await;
    let renewals = events_of(&events, "SubscriptionRenewed");
    let starts: Vec<&str> = renewals
        .iter()
        .map(|r| r["period_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-02-28T10:00:00Z",
            "2026-03-31T10:00:00Z",
            "2026-04-30T10:00:00Z",
            "2026-05-31T10:00:00Z",
            "2026-06-30T10:00:00Z",
            "2026-07-31T10:00:00Z",
            "2026-08-31T10:00:00Z",
            "2026-09-30T10:00:00Z",
            "2026-10-31T10:00:00Z",
            "2026-11-30T10:00:00Z",
            "2026-12-31T10:00:00Z",
            "2027-01-31T10:00:00Z",
        ]
    );
    // Every renewal happened at its own business time, in order.
    let at: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == "SubscriptionRenewed")
        .map(|e| {
            e.occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    assert_eq!(at.iter().map(String::as_str).collect::<Vec<_>>(), starts);
    let numbers: Vec<String> = events_of(&events, "InvoiceNumberAssigned")
        .iter()
        .map(|n| n["number"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=13).map(|n| format!("KB-{n:06}")).collect();
    assert_eq!(numbers, expected);
    assert_eq!(events_of(&events, "InvoicePaid").len(), 13);
    assert_eq!(app.sandbox.charges_made(), 13);

    // Advancing again over the same time runs nothing twice.
    let head = app.head().await;
    let (status, _, _) = error_of(
        app.post(
            &format!("/v1/test_clocks/{clock}/advance"),
            r#"{"frozen_time":"2027-01-31T10:00:00Z"}"#,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(app.head().await, head);
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        13 * 2000,
        "13 paid invoices"
    );
}

#[tokio::test]
async fn an_upgrade_at_half_of_a_30_day_period_with_always_invoice_nets_half_the_difference() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-04-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let basic = plan(
        &app,
        json!({"name":"Basic","currency":"usd","amount":1000,"interval":"day","interval_count":30}),
    )
    .await;
    let pro = plan(
        &app,
        json!({"name":"Pro","currency":"usd","amount":3000,"interval":"day","interval_count":30}),
    )
    .await;
    let sub = subscribe(&app, &cus, &basic, json!({})).await;
    advance(&app, &clock, "2026-04-16T00:00:00Z").await;
    let body = json!({"plan_id": pro, "proration_behavior": "always_invoice"});
    let changed = app
        .post_ok(
            &format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap()),
            &body.to_string(),
        )
        .await;
    assert_eq!(changed["plan"]["id"], pro.as_str());
    assert_eq!(changed["pending_invoice_items"], 0);
    let inv = invoice(&app, &changed["latest_invoice"]).await;
    assert_ne!(inv["id"], sub["latest_invoice"]);
    assert_eq!(inv["billing_reason"], "subscription_update");
    let amounts: Vec<i64> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [-500, 1500]);
    assert_eq!(
        (
            inv["total"].clone(),
            inv["status"].clone(),
            inv["amount_paid"].clone()
        ),
        (1000.into(), "paid".into(), 1000.into())
    );
    assert_eq!(app.sandbox.charges_made(), 2);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 + 1000);
}

#[tokio::test]
async fn a_trial_ends_into_an_active_subscription_with_a_paid_invoice() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-03-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "eur", "DE", "tok_visa").await;
    let p = plan(
        &app,
        json!({"name":"Team","currency":"eur","amount":4900,"interval":"month","trial_days":14}),
    )
    .await;
    let sub = subscribe(&app, &cus, &p, json!({})).await;
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["trial_end"], "2026-03-15T00:00:00Z");
    assert_eq!(sub["latest_invoice"], Value::Null);
    assert_eq!(app.sandbox.charges_made(), 0);

    advance(&app, &clock, "2026-03-15T00:00:01Z").await;
    let sub = subscription(&app, &sub["id"]).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_start"], "2026-03-15T00:00:00Z");
    assert_eq!(sub["current_period_end"], "2026-04-15T00:00:00Z");
    let inv = invoice(&app, &sub["latest_invoice"]).await;
    assert_eq!(
        (inv["status"].clone(), inv["amount_paid"].clone()),
        ("paid".into(), 4900.into())
    );
    assert_eq!(inv["period_start"], "2026-03-15T00:00:00Z");
    let events = app.all_events().await;
    assert_eq!(events_of(&events, "SubscriptionTrialEnded").len(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "eur", "cash:sandbox"), 4900);
}

#[tokio::test]
async fn a_failed_renewal_goes_past_due_is_retried_on_schedule_then_canceled() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let p = plan(
        &app,
        json!({"name":"Gold","currency":"usd","amount":2000,"interval":"month"}),
    )
    .await;
    let sub = subscribe(&app, &cus, &p, json!({})).await;
    // The card starts declining.
    let pm = json!({"gateway": "sandbox", "token": "tok_chargeDeclinedInsufficientFunds", "set_default": true});
    app.post_ok(
        &format!("/v1/customers/{cus}/payment_methods"),
        &pm.to_string(),
    )
    .await;

    advance(&app, &clock, "2026-02-10T12:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "past_due");
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(inv["status"], "open");
    assert_eq!(inv["attempt_count"], 1);
    assert_eq!(inv["last_failure_code"], "insufficient_funds");
    assert_eq!(inv["next_payment_attempt"], "2026-02-11T00:00:00Z");

    // Retries 1, 3, 5, 7 days after the first attempt; then the subscription is canceled.
    advance(&app, &clock, "2026-02-16T12:00:00Z").await;
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(inv["attempt_count"], 4);
    assert_eq!(subscription(&app, &sub["id"]).await["status"], "past_due");
    advance(&app, &clock, "2026-02-17T12:00:00Z").await;
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(inv["attempt_count"], 5);
    assert_eq!(inv["next_payment_attempt"], Value::Null);
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "canceled");
    let attempts: Vec<String> = app
        .all_events()
        .await
        .iter()
        .filter(|e| e.event_type == "InvoicePaymentFailed")
        .map(|e| {
            e.occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .collect();
    assert_eq!(
        attempts,
        [
            "2026-02-10T00:00:00Z",
            "2026-02-11T00:00:00Z",
            "2026-02-13T00:00:00Z",
            "2026-02-15T00:00:00Z",
            "2026-02-17T00:00:00Z"
        ]
    );
    // A canceled subscription renews no more.
    let head = app.head().await;
    advance(&app, &clock, "2026-05-01T00:00:00Z").await;
    assert_eq!(app.head().await.0, head.0 + 1, "only the clock moved");
    app.assert_books_balance().await;
}

#[tokio::test]
async fn jpy_and_kwd_invoices_are_taxed_to_the_minor_unit() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    app.post_ok("/v1/tax_rates", r#"{"display_name":"JP consumption tax","percentage":"10","inclusive":false,"country":"JP"}"#).await;
    app.post_ok(
        "/v1/tax_rates",
        r#"{"display_name":"KW VAT","percentage":"5","inclusive":true,"country":"KW"}"#,
    )
    .await;

    // JPY (exponent 0): 3 × ¥1,333 = ¥3,999; 10 % exclusive = ¥399.9 → ¥400 (half-even); ¥4,399.
    let jp = customer(&app, &clock, "jpy", "JP", "tok_visa").await;
    let body = json!({"customer_id": jp, "items": [{"description": "Seats", "amount": 1333, "quantity": 3}]});
    let inv = app.post_ok("/v1/invoices", &body.to_string()).await;
    assert_eq!(inv["status"], "draft");
    assert_eq!(
        (
            inv["currency"].clone(),
            inv["subtotal"].clone(),
            inv["tax"].clone(),
            inv["total"].clone()
        ),
        ("jpy".into(), 3999.into(), 400.into(), 4399.into())
    );
    let paid = app
        .post_ok(
            &format!("/v1/invoices/{}/pay", inv["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(
        (paid["status"].clone(), paid["amount_paid"].clone()),
        ("paid".into(), 4399.into())
    );
    assert!(paid["number"].as_str().unwrap().starts_with("KB-"));

    // KWD (exponent 3): 10.000 KWD with 5 % included: net = 10000 / 1.05 = 9523.809… → 9524
    // fils; tax = 476 fils; the total stays 10.000.
    let kw = customer(&app, &clock, "kwd", "KW", "tok_visa").await;
    let body = json!({"customer_id": kw, "items": [{"description": "Plan", "amount": 10000}]});
    let inv = app.post_ok("/v1/invoices", &body.to_string()).await;
    assert_eq!(
        (
            inv["subtotal"].clone(),
            inv["tax"].clone(),
            inv["total"].clone()
        ),
        (10000.into(), 476.into(), 10000.into())
    );
    assert_eq!(inv["lines"][0]["tax_amounts"][0]["amount"], 476);

    // A tax-exempt customer pays no tax.
    let exempt = customer(&app, &clock, "jpy", "JP", "tok_visa").await;
    app.post_ok(&format!("/v1/customers/{exempt}"), r#"{"tax_exempt":true}"#)
        .await;
    let body = json!({"customer_id": exempt, "items": [{"description": "Seats", "amount": 1333}]});
    let inv = app.post_ok("/v1/invoices", &body.to_string()).await;
    assert_eq!(
        (inv["tax"].clone(), inv["total"].clone()),
        (0.into(), 1333.into())
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "jpy", "cash:sandbox"), 4399);
}

#[tokio::test]
async fn bad_subscription_requests_are_4xx_and_record_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let usd = plan(
        &app,
        json!({"name":"Gold","currency":"usd","amount":2000,"interval":"month"}),
    )
    .await;
    let eur_only = plan(
        &app,
        json!({"name":"Euro","currency":"eur","amount":2000,"interval":"month"}),
    )
    .await;
    let archived = plan(
        &app,
        json!({"name":"Old","currency":"usd","amount":2000,"interval":"month"}),
    )
    .await;
    app.post_ok(&format!("/v1/plans/{archived}/archive"), "")
        .await;
    let head = app.head().await;
    let cases = [
        (
            json!({"customer_id": cus, "plan_id": eur_only}),
            400,
            "precondition_failed",
        ),
        (
            json!({"customer_id": cus, "plan_id": archived}),
            400,
            "precondition_failed",
        ),
        (
            json!({"customer_id": cus, "plan_id": usd, "quantity": 0}),
            400,
            "parameter_invalid",
        ),
        (
            json!({"customer_id": cus, "plan_id": usd, "coupon": "X"}),
            400,
            "parameter_invalid",
        ),
        (
            json!({"customer_id": "cus_00000000000000000000000000000000", "plan_id": usd}),
            404,
            "resource_missing",
        ),
        (
            json!({"customer_id": cus, "plan_id": "plan_nope"}),
            404,
            "resource_missing",
        ),
    ];
    for (body, status, code) in cases {
        let (s, _, c) =
            error_of(app.post("/v1/subscriptions", &body.to_string(), None).await).await;
        assert_eq!((s, c.as_str()), (status, code), "{body}");
    }
    assert_eq!(app.head().await, head);
    // The seed's endpoint is the same command.
    let sub = app
        .post_ok(
            "/subscriptions/create",
            &json!({"customer_id": cus, "plan_id": usd}).to_string(),
        )
        .await;
    assert_eq!(sub["status"], "active");
    app.assert_books_balance().await;
}

#[tokio::test]
async fn the_scheduler_renews_what_is_due_once_even_when_run_twice_or_twice_at_once() {
    use commands::billing::Scheduler;
    let app = spawn_app(Kind::Postgres).await;
    let cus = app
        .post_ok(
            "/v1/customers",
            r#"{"email":"ops@example.com","currency":"usd"}"#,
        )
        .await;
    let cus = cus["id"].as_str().unwrap().to_string();
    let pm = r#"{"gateway":"sandbox","token":"tok_visa"}"#;
    app.post_ok(&format!("/v1/customers/{cus}/payment_methods"), pm)
        .await;
    let daily = plan(
        &app,
        json!({"name":"Daily","currency":"usd","amount":100,"interval":"day"}),
    )
    .await;
    let sub = subscribe(&app, &cus, &daily, json!({})).await;
    // A subscription on a test clock is left to its clock.
    let clock = clock(&app, "2020-01-01T00:00:00Z").await;
    let on_clock = customer(&app, &clock, "usd", "US", "tok_visa").await;
    subscribe(&app, &on_clock, &daily, json!({})).await;
    assert_eq!(app.sandbox.charges_made(), 2);

    let end: chrono::DateTime<chrono::Utc> =
        sub["current_period_end"].as_str().unwrap().parse().unwrap();
    let mut scheduler = Scheduler::new(app.billing.clone());
    let early = scheduler
        .tick(end - chrono::TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(early.jobs_run, 0);
    let due = scheduler
        .tick(end + chrono::TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!((due.jobs_run, due.jobs_failed), (1, 0));
    let again = scheduler
        .tick(end + chrono::TimeDelta::seconds(2))
        .await
        .unwrap();
    assert_eq!(again.jobs_run, 0);
    assert_eq!(app.sandbox.charges_made(), 3);
    let renewed = subscription(&app, &sub["id"]).await;
    assert_eq!(
        renewed["current_period_start"],
        end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );

    // Two schedulers that both believe they lead (two processes) renew the next day once.
    let next = end + chrono::TimeDelta::days(1) + chrono::TimeDelta::seconds(1);
    let mut a = Scheduler::new(app.billing.clone());
    let mut b = Scheduler::new(app.billing.clone());
    let (ra, rb) = tokio::join!(a.tick(next), b.tick(next));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    eprintln!("two schedulers: {ra:?} {rb:?}");
    let events = app.all_events().await;
    assert_eq!(events_of(&events, "SubscriptionRenewed").len(), 2);
    assert_eq!(app.sandbox.charges_made(), 4, "one charge per renewal");
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        4 * 100,
        "one charge per renewal"
    );
}

#[tokio::test]
async fn only_one_process_leads_the_scheduler_at_a_time() {
    let app = spawn_app(Kind::Postgres).await;
    let open = || async {
        let s = ledger::store::postgres::PgStore::connect(app.db_url().unwrap(), 2)
            .await
            .unwrap();
        ledger::store::AnyStore::Postgres(s)
    };
    let (one, two) = (open().await, open().await);
    let mut held = one
        .try_lead("scheduler")
        .await
        .unwrap()
        .expect("first leads");
    assert!(held.holds().await);
    assert!(two.try_lead("scheduler").await.unwrap().is_none());
    assert!(
        two.try_lead("relay").await.unwrap().is_some(),
        "another role is free"
    );
    drop(held);
    let mut second = None;
    for _ in 0..50 {
        second = two.try_lead("scheduler").await.unwrap();
        if second.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(second.is_some(), "released when the leader goes");
}

#[tokio::test]
async fn what_review_found_stays_fixed() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-04-18T00:00:00Z").await;
    // A tax rate given with a lower-case state applies to a customer in that state.
    app.post_ok(
        "/v1/tax_rates",
        r#"{"display_name":"CA","percentage":"10","inclusive":false,"country":"US","state":"ca"}"#,
    )
    .await;
    let body = json!({"email": "a@example.com", "currency": "usd",
        "address": {"country": "US", "state": "CA"}, "test_clock": clock});
    let ca = app.post_ok("/v1/customers", &body.to_string()).await;
    let ca = ca["id"].as_str().unwrap();
    let inv = app
        .post_ok(
            "/v1/invoices",
            &json!({"customer_id": ca, "items": [{"description": "x", "amount": 1000}]})
                .to_string(),
        )
        .await;
    assert_eq!(inv["tax"], 100);

    // A change in a first period shortened to the anchor is prorated over the whole interval
    // ending at the anchor, as that period was billed: it never credits more than was paid.
    let cus = customer(&app, &clock, "usd", "FR", "tok_visa").await;
    let day30 = plan(
        &app,
        json!({"name":"M","currency":"usd","amount":3000,"interval":"day","interval_count":30}),
    )
    .await;
    let sub = subscribe(
        &app,
        &cus,
        &day30,
        json!({"billing_cycle_anchor": "2026-04-28T00:00:00Z"}),
    )
    .await;
    let first = invoice(&app, &sub["latest_invoice"]).await;
    assert_eq!(first["total"], 1000, "10 of 30 days");
    advance(&app, &clock, "2026-04-23T00:00:00Z").await;
    let path = format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap());
    let changed = app
        .post_ok(
            &path,
            r#"{"quantity":2,"proration_behavior":"always_invoice"}"#,
        )
        .await;
    let inv = invoice(&app, &changed["latest_invoice"]).await;
    let amounts: Vec<i64> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [-500, 1000], "5 of 30 days of 3000, then of 6000");
    // Two changes at the same instant are two invoices.
    let again = app
        .post_ok(
            &path,
            r#"{"quantity":3,"proration_behavior":"always_invoice"}"#,
        )
        .await;
    assert_ne!(again["latest_invoice"], changed["latest_invoice"]);
    let inv = invoice(&app, &again["latest_invoice"]).await;
    assert_eq!(inv["total"], 500);

    // A metered period without usage renews without an invoice.
    let metered = plan(&app, json!({"name":"API","currency":"usd","amount":25,"interval":"month","usage_type":"metered"})).await;
    let m = subscribe(&app, &cus, &metered, json!({})).await;
    advance(&app, &clock, "2026-05-24T00:00:00Z").await;
    let m = subscription(&app, &m["id"]).await;
    assert_eq!(
        (m["status"].clone(), m["latest_invoice"].clone()),
        ("active".into(), Value::Null)
    );
    assert_eq!(m["current_period_start"], "2026-05-23T00:00:00Z");

    // An invoice the domain would refuse (two inclusive rates) refuses the subscription and
    // records nothing.
    for name in ["TVA", "Other"] {
        let rate =
            json!({"display_name": name, "percentage": "20", "inclusive": true, "country": "FR"});
        app.post_ok("/v1/tax_rates", &rate.to_string()).await;
    }
    let head = app.head().await;
    let body = json!({"customer_id": cus, "plan_id": day30});
    let (status, _, _) =
        error_of(app.post("/v1/subscriptions", &body.to_string(), None).await).await;
    assert_eq!(status, 400);
    assert_eq!(app.head().await, head);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn graduated_tiers_price_each_unit_by_its_tier() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-07-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let tiers = json!([
        {"up_to": 10, "unit_amount": 500},
        {"up_to": 50, "unit_amount": 400, "flat_amount": 1000},
        {"up_to": null, "unit_amount": 300}
    ]);
    let seats = app
        .post_ok(
            "/v1/plans",
            &json!({"name":"Seats","currency":"usd","interval":"month","tiers": tiers}).to_string(),
        )
        .await;
    assert_eq!(
        (seats["billing_scheme"].clone(), seats["amount"].clone()),
        ("tiered".into(), 0.into())
    );
    let seats = seats["id"].as_str().unwrap().to_string();
    // 55 seats: 10 × 500 + 40 × 400 + 1000 flat + 5 × 300 = 23,500.
    let sub = subscribe(&app, &cus, &seats, json!({"quantity": 55})).await;
    let inv = invoice(&app, &sub["latest_invoice"]).await;
    let lines: Vec<(i64, i64)> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["quantity"].as_i64().unwrap(),
                l["unit_amount"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, [(10, 500), (40, 400), (1, 1000), (5, 300)]);
    assert_eq!(
        (inv["total"].clone(), inv["status"].clone()),
        (23_500.into(), "paid".into())
    );

    // Metered with tiers: usage 12 in arrears → 10 × 500 + 2 × 400 + 1000.
    let api = app
        .post_ok("/v1/plans", &json!({"name":"API","currency":"usd","interval":"month","usage_type":"metered","tiers": tiers}).to_string())
        .await;
    let m = subscribe(&app, &cus, api["id"].as_str().unwrap(), json!({})).await;
    app.post_ok(
        &format!("/v1/subscriptions/{}/usage", m["id"].as_str().unwrap()),
        r#"{"quantity":12}"#,
    )
    .await;
    advance(&app, &clock, "2026-08-01T00:00:01Z").await;
    let m = subscription(&app, &m["id"]).await;
    let inv = invoice(&app, &m["latest_invoice"]).await;
    assert_eq!(inv["total"], 6_800);

    // Tiers that do not climb, or with a price beside them, are refused.
    let head = app.head().await;
    for bad in [
        json!({"name":"X","currency":"usd","interval":"month","tiers":[{"up_to":10,"unit_amount":1},{"up_to":5,"unit_amount":1},{"up_to":null,"unit_amount":1}]}),
        json!({"name":"X","currency":"usd","interval":"month","amount":100,"tiers": tiers}),
        json!({"name":"X","currency":"usd","interval":"month"}),
    ] {
        assert_eq!(
            error_of(app.post("/v1/plans", &bad.to_string(), None).await)
                .await
                .0,
            400,
            "{bad}"
        );
    }
    assert_eq!(app.head().await, head);
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        2 * 23_500 + 6_800,
        "seats twice (created, renewed) and the usage"
    );
}

#[tokio::test]
async fn invoice_actions_replay_under_their_idempotency_key() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let body = json!({"customer_id": cus, "items": [{"description": "Setup", "amount": 5000}]});
    let draft = app.post_ok("/v1/invoices", &body.to_string()).await;
    let id = draft["id"].as_str().unwrap();
    for action in ["finalize", "pay"] {
        let path = format!("/v1/invoices/{id}/{action}");
        let key = format!("{action}-{id}");
        let first = app.post(&path, "", Some(&key)).await;
        assert_eq!(first.status(), 200);
        let first = first.text().await.unwrap();
        let head = app.head().await;
        let again = app.post(&path, "", Some(&key)).await;
        assert_eq!(again.headers()["idempotent-replayed"], "true", "{action}");
        assert_eq!(again.text().await.unwrap(), first);
        assert_eq!(app.head().await, head, "{action}: nothing more recorded");
    }
    let paid = invoice(&app, &draft["id"]).await;
    assert_eq!(
        (paid["status"].clone(), paid["attempt_count"].clone()),
        ("paid".into(), 1.into())
    );
    assert_eq!(app.sandbox.charges_made(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 5000);
}

#[tokio::test]
async fn dunning_that_cancels_leaves_a_final_invoice_for_the_usage_of_the_last_period() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let api = plan(&app, json!({"name":"API","currency":"usd","amount":25,"interval":"month","usage_type":"metered"})).await;
    let sub = subscribe(&app, &cus, &api, json!({})).await;
    let usage = format!("/v1/subscriptions/{}/usage", sub["id"].as_str().unwrap());
    app.post_ok(&usage, r#"{"quantity":10}"#).await;
    let pm = json!({"gateway": "sandbox", "token": "tok_chargeDeclined", "set_default": true});
    app.post_ok(
        &format!("/v1/customers/{cus}/payment_methods"),
        &pm.to_string(),
    )
    .await;
    advance(&app, &clock, "2026-02-10T00:00:01Z").await;
    assert_eq!(subscription(&app, &sub["id"]).await["status"], "past_due");
    app.post_ok(&usage, r#"{"quantity":4}"#).await;
    advance(&app, &clock, "2026-02-20T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "canceled");
    let last = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(
        (last["status"].clone(), last["total"].clone()),
        ("open".into(), 100.into())
    );
    assert_eq!(last["attempt_count"], 0, "finalized for /pay, not charged");
    assert!(last["number"].as_str().unwrap().starts_with("KB-"));
    app.assert_books_balance().await;
}

#[tokio::test]
async fn second_review_findings_stay_fixed() {
    use std::sync::atomic::Ordering;
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let one_off = |amount: i64| {
        json!({"customer_id": cus, "items": [{"description": "x", "amount": amount}]}).to_string()
    };

    // A payment attempt left without an outcome is completed with the charge it made, even
    // after the customer removed that card: never a failure recorded for money taken, never a
    // second charge.
    let inv = app.post_ok("/v1/invoices", &one_off(1000)).await;
    let pay = format!("/v1/invoices/{}/pay", inv["id"].as_str().unwrap());
    app.sandbox.down.store(true, Ordering::SeqCst);
    let pending = app.post_ok(&pay, "").await;
    assert_eq!(
        (pending["status"].clone(), pending["attempt_count"].clone()),
        ("open".into(), 1.into())
    );
    app.sandbox.down.store(false, Ordering::SeqCst);
    let c = app.get_ok(&format!("/v1/customers/{cus}")).await;
    let pm = c["default_payment_method"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/v1/customers/{cus}/payment_methods/{pm}"), None)
            .await
            .status(),
        200
    );
    let paid = app.post_ok(&pay, "").await;
    assert_eq!(
        (paid["status"].clone(), paid["attempt_count"].clone()),
        ("paid".into(), 1.into())
    );
    assert_eq!(app.sandbox.charges_made(), 1);

    // Once set, a customer's currency stays (its invoices and subscriptions are in it).
    let path = format!("/v1/customers/{cus}/balance_transactions");
    let (status, _, code) = error_of(
        app.post(
            &path,
            r#"{"amount":-100,"currency":"eur","description":"x"}"#,
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "currency_locked"));

    // Paying a draft that the customer's credit covers answers the paid invoice.
    app.post_ok(
        &path,
        r#"{"amount":-1000,"currency":"usd","description":"credit"}"#,
    )
    .await;
    let covered = app.post_ok("/v1/invoices", &one_off(1000)).await;
    let paid = app
        .post_ok(
            &format!("/v1/invoices/{}/pay", covered["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(
        (paid["status"].clone(), paid["credit_applied"].clone()),
        ("paid".into(), 1000.into())
    );

    // Event types are names.
    let r = app
        .client
        .get(app.url("/v1/events?type=%00"))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_renewal_recorded_without_its_invoice_is_invoiced_by_the_next_run() {
    use commands::charge::Rendered;
    use commands::subscription::{Subscription, SubscriptionCommand};
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-03-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let p = plan(
        &app,
        json!({"name":"G","currency":"usd","amount":700,"interval":"month"}),
    )
    .await;
    let sub = subscribe(&app, &cus, &p, json!({})).await;
    // The renewal is recorded, then the process "dies" before the invoice is drafted.
    let id: ledger::ids::SubscriptionId = sub["id"].as_str().unwrap().parse().unwrap();
    let at: chrono::DateTime<chrono::Utc> = "2026-04-01T00:00:00Z".parse().unwrap();
    let renew = SubscriptionCommand::Renew { period_start: at };
    let none = |_: &Subscription| Rendered {
        status: 200,
        body: String::new(),
    };
    app.billing
        .at(at)
        .executor()
        .execute::<Subscription>(&id, renew, &ledger::event::Metadata::default(), None, &none)
        .await
        .unwrap();
    let s = subscription(&app, &sub["id"]).await;
    let missing = app
        .client
        .get(app.url(&format!(
            "/v1/invoices/{}",
            s["latest_invoice"].as_str().unwrap()
        )))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    advance(&app, &clock, "2026-04-02T00:00:00Z").await;
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(
        (inv["status"].clone(), inv["total"].clone()),
        ("paid".into(), 700.into())
    );
    assert_eq!(app.sandbox.charges_made(), 2);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 700 + 700);
}

#[tokio::test]
async fn what_is_owed_does_not_change_under_a_payment_without_outcome() {
    use std::sync::atomic::Ordering;
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let body = json!({"customer_id": cus, "items": [{"description": "x", "amount": 1000}]});
    let inv = app.post_ok("/v1/invoices", &body.to_string()).await;
    let id = inv["id"].as_str().unwrap().to_string();
    app.sandbox.down.store(true, Ordering::SeqCst);
    app.post_ok(&format!("/v1/invoices/{id}/pay"), "").await;
    app.sandbox.down.store(false, Ordering::SeqCst);
    let head = app.head().await;
    let note = json!({"invoice_id": id, "amount": 300, "reason": "order_change"});
    for (path, body) in [
        ("/v1/credit_notes".to_string(), note.to_string()),
        (format!("/v1/invoices/{id}/void"), String::new()),
        (
            format!("/v1/invoices/{id}/mark_uncollectible"),
            String::new(),
        ),
    ] {
        let (status, _, code) = error_of(app.post(&path, &body, None).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "precondition_failed"),
            "{path}"
        );
    }
    assert_eq!(app.head().await, head);
    // Once the payment has its outcome, the invoice is paid with what was charged.
    let paid = app.post_ok(&format!("/v1/invoices/{id}/pay"), "").await;
    assert_eq!(
        (paid["status"].clone(), paid["amount_paid"].clone()),
        ("paid".into(), 1000.into())
    );
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000);
}

#[tokio::test]
async fn a_renewal_payment_without_outcome_is_completed_after_a_grace() {
    use std::sync::atomic::Ordering;
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let p = plan(
        &app,
        json!({"name":"G","currency":"usd","amount":700,"interval":"month"}),
    )
    .await;
    let sub = subscribe(&app, &cus, &p, json!({})).await;
    app.sandbox.down.store(true, Ordering::SeqCst);
    advance(&app, &clock, "2026-02-10T00:00:00Z").await;
    app.sandbox.down.store(false, Ordering::SeqCst);
    let s = subscription(&app, &sub["id"]).await;
    let pending = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(
        (pending["status"].clone(), pending["attempt_count"].clone()),
        ("open".into(), 1.into())
    );
    // Within the grace the request that made it may still finish: nothing runs.
    advance(&app, &clock, "2026-02-10T00:00:30Z").await;
    assert_eq!(invoice(&app, &s["latest_invoice"]).await["status"], "open");
    advance(&app, &clock, "2026-02-10T00:01:01Z").await;
    let paid = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(
        (paid["status"].clone(), paid["attempt_count"].clone()),
        ("paid".into(), 1.into())
    );
    assert_eq!(app.sandbox.charges_made(), 2);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 700 + 700);
}
