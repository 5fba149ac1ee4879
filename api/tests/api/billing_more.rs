//! More billing scenarios over HTTP with test clocks: prorations kept for the next renewal,
//! `proration_behavior: none`, cancellation (at period end and now), metered usage in arrears,
//! pause/resume, the one-off invoice lifecycle with gapless numbers, credit notes (less due, or
//! a refund), the customer's credit balance, JPY renewals taxed exactly, and concurrent advances
//! of one test clock.

use serde_json::{Value, json};

use crate::billing::{advance, clock, customer, invoice, plan, subscribe, subscription};
use crate::support::{Kind, TestApp, account_balance, error_of, spawn_app};

/// POST to a subscription's path (`""` for the update itself, or `/cancel`, `/pause`, ...).
async fn sub_post(app: &TestApp, sub: &Value, action: &str, body: Value) -> Value {
    let path = format!("/v1/subscriptions/{}{action}", sub["id"].as_str().unwrap());
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    app.post_ok(&path, &body).await
}

async fn invoice_action(app: &TestApp, inv: &Value, action: &str) -> reqwest::Response {
    let path = format!("/v1/invoices/{}/{action}", inv["id"].as_str().unwrap());
    app.post(&path, "", None).await
}

async fn invoice_action_ok(app: &TestApp, inv: &Value, action: &str) -> Value {
    let path = format!("/v1/invoices/{}/{action}", inv["id"].as_str().unwrap());
    app.post_ok(&path, "").await
}

fn events_of(events: &[ledger::RecordedEvent], ty: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event_type == ty)
        .map(|e| e.payload.clone())
        .collect()
}

async fn count(app: &TestApp, ty: &str) -> usize {
    events_of(&app.all_events().await, ty).len()
}

/// The line amounts of an invoice, sorted (the order of lines is not part of the contract).
fn amounts(inv: &Value) -> Vec<i64> {
    let mut a: Vec<i64> = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    a.sort_unstable();
    a
}

fn totals(inv: &Value) -> (i64, i64, i64, i64, i64) {
    let n = |k: &str| inv[k].as_i64().unwrap_or_else(|| panic!("{k} in {inv}"));
    (
        n("subtotal"),
        n("tax"),
        n("total"),
        n("amount_due"),
        n("amount_paid"),
    )
}

/// Basic (1000) and Pro (3000) on a 30-day interval.
async fn thirty_day_plans(app: &TestApp) -> (String, String) {
    let basic = plan(
        app,
        json!({"name":"Basic","currency":"usd","amount":1000,"interval":"day","interval_count":30}),
    )
    .await;
    let pro = plan(
        app,
        json!({"name":"Pro","currency":"usd","amount":3000,"interval":"day","interval_count":30}),
    )
    .await;
    (basic, pro)
}

async fn gold(app: &TestApp) -> String {
    plan(
        app,
        json!({"name":"Gold","currency":"usd","amount":2000,"interval":"month"}),
    )
    .await
}

// 1. create_prorations ------------------------------------------------------------------------

#[tokio::test]
async fn an_upgrade_with_create_prorations_keeps_two_items_for_the_next_renewal_invoice() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-04-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let (basic, pro) = thirty_day_plans(&app).await;
    let sub = subscribe(&app, &cus, &basic, json!({})).await;
    assert_eq!(sub["current_period_end"], "2026-05-01T00:00:00Z");
    assert_eq!(app.sandbox.charges_made(), 1);

    advance(&app, &clock, "2026-04-16T00:00:00Z").await;
    let changed = sub_post(
        &app,
        &sub,
        "",
        json!({"plan_id": pro, "proration_behavior": "create_prorations"}),
    )
    .await;
    assert_eq!(changed["plan"]["id"], pro.as_str());
    assert_eq!(changed["plan"]["amount"], 3000);
    assert_eq!(changed["pending_invoice_items"], 2);
    assert_eq!(changed["latest_invoice"], sub["latest_invoice"]);
    assert_eq!(app.sandbox.charges_made(), 1, "nothing is charged now");
    assert_eq!(count(&app, "InvoiceDrafted").await, 1, "no invoice now");
    let events = app.all_events().await;
    let updated = events_of(&events, "SubscriptionUpdated");
    assert_eq!(updated.len(), 1);
    let items: Vec<i64> = updated[0]["proration_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["unit_amount"].as_i64().unwrap() * i["quantity"].as_i64().unwrap())
        .collect();
    assert_eq!(items, [-500, 1500]);

    advance(&app, &clock, "2026-05-02T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "active");
    assert_eq!(s["current_period_start"], "2026-05-01T00:00:00Z");
    assert_eq!(s["current_period_end"], "2026-05-31T00:00:00Z");
    assert_eq!(s["pending_invoice_items"], 0);
    assert_ne!(s["latest_invoice"], sub["latest_invoice"]);
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(inv["billing_reason"], "subscription_cycle");
    assert_eq!(amounts(&inv), [-500, 1500, 3000]);
    let prorations = inv["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["proration"] == true)
        .count();
    assert_eq!(prorations, 2);
    assert_eq!(totals(&inv), (4000, 0, 4000, 4000, 4000));
    assert_eq!(inv["status"], "paid");
    assert_eq!(app.sandbox.charges_made(), 2);
    let events = app.all_events().await;
    assert_eq!(events_of(&events, "InvoicePaid").len(), 2);
    assert_eq!(events_of(&events, "ChargeSucceeded").len(), 2);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 + 4000);
}

// 2. proration_behavior none ------------------------------------------------------------------

#[tokio::test]
async fn a_change_without_proration_bills_only_the_new_price_at_the_next_renewal() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-04-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let (basic, pro) = thirty_day_plans(&app).await;
    let sub = subscribe(&app, &cus, &basic, json!({})).await;
    advance(&app, &clock, "2026-04-16T00:00:00Z").await;
    let changed = sub_post(
        &app,
        &sub,
        "",
        json!({"plan_id": pro, "proration_behavior": "none"}),
    )
    .await;
    assert_eq!(changed["plan"]["id"], pro.as_str());
    assert_eq!(changed["pending_invoice_items"], 0);
    assert_eq!(changed["latest_invoice"], sub["latest_invoice"]);
    assert_eq!(app.sandbox.charges_made(), 1);
    assert_eq!(count(&app, "InvoiceDrafted").await, 1);

    advance(&app, &clock, "2026-05-02T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(inv["period_start"], "2026-05-01T00:00:00Z");
    assert_eq!(amounts(&inv), [3000]);
    assert_eq!(inv["lines"][0]["proration"], false);
    assert_eq!(totals(&inv), (3000, 0, 3000, 3000, 3000));
    assert_eq!(inv["status"], "paid");
    assert_eq!(app.sandbox.charges_made(), 2);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 + 3000);
}

// 3. cancel -----------------------------------------------------------------------------------

#[tokio::test]
async fn cancel_at_period_end_ends_the_subscription_at_the_renewal_without_billing() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let gold = gold(&app).await;
    let sub = subscribe(&app, &cus, &gold, json!({})).await;
    assert_eq!(app.sandbox.charges_made(), 1);

    advance(&app, &clock, "2026-01-20T00:00:00Z").await;
    let scheduled = sub_post(&app, &sub, "/cancel", json!({"at_period_end": true})).await;
    assert_eq!(scheduled["status"], "active");
    assert_eq!(scheduled["cancel_at_period_end"], true);
    assert_eq!(scheduled["canceled_at"], Value::Null);
    assert_eq!(count(&app, "SubscriptionCancelScheduled").await, 1);
    // Scheduling it again records nothing.
    let head = app.head().await;
    let again = sub_post(&app, &sub, "/cancel", json!({"at_period_end": true})).await;
    assert_eq!(again["cancel_at_period_end"], true);
    assert_eq!(app.head().await, head);

    advance(&app, &clock, "2026-02-11T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "canceled");
    assert_eq!(s["canceled_at"], "2026-02-10T00:00:00Z");
    assert_eq!(s["latest_invoice"], sub["latest_invoice"]);
    let events = app.all_events().await;
    assert_eq!(events_of(&events, "SubscriptionCanceled").len(), 1);
    assert_eq!(events_of(&events, "SubscriptionRenewed").len(), 0);
    assert_eq!(
        events_of(&events, "InvoiceDrafted").len(),
        1,
        "no new invoice"
    );
    assert_eq!(app.sandbox.charges_made(), 1, "no new charge");

    // Canceling a canceled subscription records nothing more, in either form.
    let head = app.head().await;
    let again = sub_post(&app, &sub, "/cancel", Value::Null).await;
    assert_eq!(again["status"], "canceled");
    sub_post(&app, &sub, "/cancel", json!({"at_period_end": true})).await;
    assert_eq!(app.head().await, head);
    // And it renews no more.
    advance(&app, &clock, "2026-05-01T00:00:00Z").await;
    assert_eq!(app.head().await.0, head.0 + 1, "only the clock moved");
    assert_eq!(app.sandbox.charges_made(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 2000);
}

#[tokio::test]
async fn cancel_now_ends_the_subscription_at_once_and_twice_records_nothing_more() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let gold = gold(&app).await;
    let sub = subscribe(&app, &cus, &gold, json!({})).await;
    advance(&app, &clock, "2026-01-25T12:00:00Z").await;
    let canceled = sub_post(&app, &sub, "/cancel", Value::Null).await;
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["canceled_at"], "2026-01-25T12:00:00Z");
    assert_eq!(canceled["cancel_at_period_end"], false);
    assert_eq!(canceled["latest_invoice"], sub["latest_invoice"]);
    let events = app.all_events().await;
    assert_eq!(events_of(&events, "SubscriptionCanceled").len(), 1);
    assert_eq!(events_of(&events, "InvoiceDrafted").len(), 1);
    assert_eq!(app.sandbox.charges_made(), 1);

    let head = app.head().await;
    let again = sub_post(&app, &sub, "/cancel", json!({"at_period_end": false})).await;
    assert_eq!(again["status"], "canceled");
    assert_eq!(again["canceled_at"], "2026-01-25T12:00:00Z");
    assert_eq!(app.head().await, head);

    advance(&app, &clock, "2026-03-01T00:00:00Z").await;
    assert_eq!(app.head().await.0, head.0 + 1, "only the clock moved");
    assert_eq!(subscription(&app, &sub["id"]).await["status"], "canceled");
    assert_eq!(app.sandbox.charges_made(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 2000);
}

// 4. metered ----------------------------------------------------------------------------------

#[tokio::test]
async fn metered_usage_is_billed_in_arrears_at_the_renewal() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-03-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let api_calls = plan(
        &app,
        json!({"name":"API calls","currency":"usd","amount":25,"interval":"month","usage_type":"metered"}),
    )
    .await;
    let sub = subscribe(&app, &cus, &api_calls, json!({})).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["plan"]["usage_type"], "metered");
    assert_eq!(sub["latest_invoice"], Value::Null);
    assert_eq!(app.sandbox.charges_made(), 0, "nothing charged in advance");
    assert_eq!(count(&app, "InvoiceDrafted").await, 0);

    advance(&app, &clock, "2026-03-05T00:00:00Z").await;
    let u = sub_post(&app, &sub, "/usage", json!({"quantity": 10})).await;
    assert_eq!(u["usage_in_period"], 10);
    let u = sub_post(
        &app,
        &sub,
        "/usage",
        json!({"quantity": 5, "action": "increment"}),
    )
    .await;
    assert_eq!(u["usage_in_period"], 15);
    advance(&app, &clock, "2026-03-20T00:00:00Z").await;
    let u = sub_post(
        &app,
        &sub,
        "/usage",
        json!({"quantity": 7, "action": "set"}),
    )
    .await;
    assert_eq!(u["usage_in_period"], 7);
    assert_eq!(count(&app, "UsageRecorded").await, 3);
    assert_eq!(app.sandbox.charges_made(), 0);

    advance(&app, &clock, "2026-04-02T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["current_period_start"], "2026-04-01T00:00:00Z");
    assert_eq!(s["usage_in_period"], 0);
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(inv["billing_reason"], "subscription_cycle");
    assert_eq!(inv["lines"].as_array().unwrap().len(), 1);
    let line = &inv["lines"][0];
    assert_eq!(
        (
            line["quantity"].clone(),
            line["unit_amount"].clone(),
            line["amount"].clone()
        ),
        (7.into(), 25.into(), 175.into())
    );
    // The usage line covers the period that ended.
    assert_eq!(line["period_start"], "2026-03-01T00:00:00Z");
    assert_eq!(line["period_end"], "2026-04-01T00:00:00Z");
    assert_eq!(totals(&inv), (175, 0, 175, 175, 175));
    assert_eq!(inv["status"], "paid");
    assert_eq!(app.sandbox.charges_made(), 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 175);
}

#[tokio::test]
async fn usage_on_a_licensed_plan_is_refused_and_records_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-03-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let gold = gold(&app).await;
    let sub = subscribe(&app, &cus, &gold, json!({})).await;
    let head = app.head().await;
    let path = format!("/v1/subscriptions/{}/usage", sub["id"].as_str().unwrap());
    let (status, ty, code) = error_of(app.post(&path, r#"{"quantity":3}"#, None).await).await;
    assert_eq!(
        (status, ty.as_str(), code.as_str()),
        (400, "invalid_request_error", "subscription_not_metered")
    );
    assert_eq!(app.head().await, head);
    app.assert_books_balance().await;
}

// 5. pause / resume ---------------------------------------------------------------------------

#[tokio::test]
async fn a_paused_subscription_renews_without_billing_and_bills_again_after_resume() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let gold = gold(&app).await;
    let sub = subscribe(&app, &cus, &gold, json!({})).await;
    assert_eq!(app.sandbox.charges_made(), 1);

    let paused = sub_post(&app, &sub, "/pause", Value::Null).await;
    assert_eq!(paused["status"], "paused");
    advance(&app, &clock, "2026-02-11T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "paused");
    assert_eq!(s["current_period_start"], "2026-02-10T00:00:00Z");
    assert_eq!(s["latest_invoice"], sub["latest_invoice"]);
    let events = app.all_events().await;
    assert_eq!(events_of(&events, "SubscriptionRenewed").len(), 1);
    assert_eq!(events_of(&events, "InvoiceDrafted").len(), 1, "no invoice");
    assert_eq!(app.sandbox.charges_made(), 1, "no charge");

    let resumed = sub_post(&app, &sub, "/resume", Value::Null).await;
    assert_eq!(resumed["status"], "active");
    assert_eq!(app.sandbox.charges_made(), 1, "resuming charges nothing");
    advance(&app, &clock, "2026-03-11T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "active");
    assert_eq!(s["current_period_start"], "2026-03-10T00:00:00Z");
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(inv["period_start"], "2026-03-10T00:00:00Z");
    assert_eq!(amounts(&inv), [2000]);
    assert_eq!(
        (inv["status"].clone(), inv["amount_paid"].clone()),
        ("paid".into(), 2000.into())
    );
    let events = app.all_events().await;
    assert_eq!(events_of(&events, "SubscriptionRenewed").len(), 2);
    assert_eq!(events_of(&events, "InvoiceDrafted").len(), 2);
    assert_eq!(app.sandbox.charges_made(), 2);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 2 * 2000);
}

// 6. one-off invoices -------------------------------------------------------------------------

async fn one_off(app: &TestApp, cus: &str, amount: i64, quantity: i64) -> Value {
    let body = json!({"customer_id": cus, "items": [
        {"description": "Consulting", "amount": amount, "quantity": quantity}]});
    app.post_ok("/v1/invoices", &body.to_string()).await
}

#[tokio::test]
async fn a_one_off_invoice_goes_draft_open_paid_and_numbers_are_gapless() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;

    let first = one_off(&app, &cus, 5000, 1).await;
    assert_eq!(first["status"], "draft");
    assert_eq!(first["number"], Value::Null);
    assert_eq!(first["billing_reason"], "manual");
    assert_eq!(totals(&first), (5000, 0, 5000, 5000, 0));
    assert_eq!(app.sandbox.charges_made(), 0);

    let open = invoice_action_ok(&app, &first, "finalize").await;
    assert_eq!(open["status"], "open");
    assert_eq!(open["number"], "KB-000001");
    assert_eq!(open["finalized_at"], "2026-06-01T00:00:00Z");
    assert_eq!(app.sandbox.charges_made(), 0, "finalizing charges nothing");

    let paid = invoice_action_ok(&app, &first, "pay").await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["number"], "KB-000001");
    assert_eq!(
        (
            paid["amount_paid"].clone(),
            paid["amount_remaining"].clone()
        ),
        (5000.into(), 0.into())
    );
    assert!(paid["charge"].as_str().unwrap().starts_with("ch_"));
    assert_eq!(app.sandbox.charges_made(), 1);

    // A paid invoice cannot be voided (nor paid again).
    let head = app.head().await;
    let (status, _, code) = error_of(invoice_action(&app, &first, "void").await).await;
    assert_eq!((status, code.as_str()), (400, "invoice_state_invalid"));
    let (status, _, code) = error_of(invoice_action(&app, &first, "pay").await).await;
    assert_eq!((status, code.as_str()), (400, "invoice_state_invalid"));
    assert_eq!(app.head().await, head);
    assert_eq!(app.sandbox.charges_made(), 1);

    let second = one_off(&app, &cus, 1200, 2).await;
    assert_eq!(totals(&second), (2400, 0, 2400, 2400, 0));
    let open = invoice_action_ok(&app, &second, "finalize").await;
    assert_eq!(open["number"], "KB-000002");

    // Voiding a draft consumes no number.
    let third = one_off(&app, &cus, 700, 1).await;
    let voided = invoice_action_ok(&app, &third, "void").await;
    assert_eq!(voided["status"], "void");
    assert_eq!(voided["number"], Value::Null);
    let fourth = one_off(&app, &cus, 900, 1).await;
    let open = invoice_action_ok(&app, &fourth, "finalize").await;
    assert_eq!(open["number"], "KB-000003");

    let numbers: Vec<String> = events_of(&app.all_events().await, "InvoiceNumberAssigned")
        .iter()
        .map(|n| n["number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(numbers, ["KB-000001", "KB-000002", "KB-000003"]);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 5000);
    assert_eq!(
        account_balance(&tb, "usd", &format!("receivable:{cus}")),
        2400 + 900,
        "the two invoices left open"
    );
}

#[tokio::test]
async fn an_uncollectible_invoice_can_still_be_paid() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let inv = one_off(&app, &cus, 1200, 2).await;
    let open = invoice_action_ok(&app, &inv, "finalize").await;
    assert_eq!(open["number"], "KB-000001");
    let marked = invoice_action_ok(&app, &inv, "mark_uncollectible").await;
    assert_eq!(marked["status"], "uncollectible");
    assert_eq!(app.sandbox.charges_made(), 0);

    let response = invoice_action(&app, &inv, "pay").await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "pay an uncollectible invoice: {text}");
    let paid: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(paid["status"], "paid");
    assert_eq!(
        (
            paid["amount_paid"].clone(),
            paid["amount_remaining"].clone()
        ),
        (2400.into(), 0.into())
    );
    assert_eq!(app.sandbox.charges_made(), 1);
    assert_eq!(count(&app, "InvoicePaid").await, 1);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 2400);
}

// 7. credit notes -----------------------------------------------------------------------------

fn credit_note_body(inv: &Value, amount: i64) -> String {
    json!({"invoice_id": inv["id"], "amount": amount, "reason": "order_change"}).to_string()
}

#[tokio::test]
async fn a_credit_note_on_an_open_invoice_lowers_what_is_due_and_never_below_zero() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_chargeDeclined").await;
    let inv = one_off(&app, &cus, 1000, 1).await;
    invoice_action_ok(&app, &inv, "finalize").await;
    // The payment fails (answered as the invoice, or as a card error): it stays open.
    let response = invoice_action(&app, &inv, "pay").await;
    assert!(
        [200, 402].contains(&response.status().as_u16()),
        "{}",
        response.status()
    );
    let open = invoice(&app, &inv["id"]).await;
    assert_eq!(open["status"], "open");
    assert_eq!(open["attempt_count"], 1);
    assert_eq!(open["last_failure_code"], "card_declined");
    assert_eq!(app.sandbox.charges_made(), 0);

    let credited = app
        .post_ok("/v1/credit_notes", &credit_note_body(&inv, 300))
        .await;
    assert_eq!(credited["status"], "open");
    assert_eq!(credited["total"], 1000);
    assert_eq!(credited["amount_due"], 700);
    assert_eq!(credited["amount_remaining"], 700);
    assert_eq!(credited["credit_notes"].as_array().unwrap().len(), 1);
    assert_eq!(credited["credit_notes"][0]["amount"], 300);
    assert_eq!(credited["credit_notes"][0]["refund"], false);
    assert!(
        credited["credit_notes"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("cn_")
    );
    assert_eq!(count(&app, "CreditNoteIssued").await, 1);

    // More than is due: refused, nothing recorded.
    let head = app.head().await;
    let (status, _, code) = error_of(
        app.post("/v1/credit_notes", &credit_note_body(&inv, 701), None)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "amount_invalid"));
    assert_eq!(app.head().await, head);
    let same = invoice(&app, &inv["id"]).await;
    assert_eq!(same["amount_due"], 700);

    // Crediting the rest settles it (Stripe: paid, nothing charged).
    let settled = app
        .post_ok("/v1/credit_notes", &credit_note_body(&inv, 700))
        .await;
    assert_eq!(settled["status"], "paid");
    assert_eq!(settled["amount_due"], 0);
    assert_eq!(settled["amount_remaining"], 0);
    assert_eq!(settled["amount_paid"], 0);
    assert_eq!(app.sandbox.charges_made(), 0);
    assert_eq!(count(&app, "RefundRequested").await, 0);
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "credit_notes"), 300 + 700);
    assert_eq!(account_balance(&tb, "usd", &format!("receivable:{cus}")), 0);
}

#[tokio::test]
async fn a_credit_note_on_a_paid_invoice_is_a_refund_and_replays_under_its_key() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let inv = one_off(&app, &cus, 1000, 1).await;
    let paid = invoice_action_ok(&app, &inv, "pay").await;
    assert_eq!(
        (paid["status"].clone(), paid["amount_paid"].clone()),
        ("paid".into(), 1000.into())
    );
    assert_eq!(app.sandbox.charges_made(), 1);
    let events = app.all_events().await;
    let succeeded = events_of(&events, "ChargeSucceeded");
    assert_eq!(succeeded.len(), 1);
    let gateway_charge = succeeded[0]["gateway_charge_id"]
        .as_str()
        .unwrap()
        .to_string();

    let body = credit_note_body(&inv, 400);
    let first = app
        .post("/v1/credit_notes", &body, Some("cn-refund-1"))
        .await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_text = first.text().await.unwrap();
    let credited: Value = serde_json::from_str(&first_text).unwrap();
    assert_eq!(credited["status"], "paid");
    assert_eq!(credited["amount_paid"], 1000);
    assert_eq!(credited["credit_notes"].as_array().unwrap().len(), 1);
    assert_eq!(credited["credit_notes"][0]["amount"], 400);
    assert_eq!(credited["credit_notes"][0]["refund"], true);

    let events = app.all_events().await;
    let refund_types: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type.contains("Refund"))
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(refund_types, ["RefundRequested", "RefundSucceeded"]);
    assert_eq!(events_of(&events, "RefundRequested")[0]["amount"], 400);
    assert_eq!(app.sandbox.refunded_minor(&gateway_charge), Some(400));

    // The same key and body: the same answer, replayed, nothing recorded.
    let head = app.head().await;
    let replay = app
        .post("/v1/credit_notes", &body, Some("cn-refund-1"))
        .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap().to_string()),
        Some("true".to_string())
    );
    assert_eq!(replay.text().await.unwrap(), first_text);
    assert_eq!(app.head().await, head);
    assert_eq!(app.sandbox.refunded_minor(&gateway_charge), Some(400));

    // More than is left to refund (600): refused, nothing recorded.
    let (status, _, code) = error_of(
        app.post("/v1/credit_notes", &credit_note_body(&inv, 601), None)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "amount_invalid"));
    assert_eq!(app.head().await, head);
    assert_eq!(app.sandbox.refunded_minor(&gateway_charge), Some(400));
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000 - 400);
    assert_eq!(account_balance(&tb, "usd", "refunds"), 400);
}

#[tokio::test]
async fn crediting_all_of_a_past_due_renewal_settles_it_and_the_subscription_recovers() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let gold = gold(&app).await;
    let sub = subscribe(&app, &cus, &gold, json!({})).await;
    let pm = json!({"gateway": "sandbox", "token": "tok_chargeDeclined", "set_default": true});
    app.post_ok(
        &format!("/v1/customers/{cus}/payment_methods"),
        &pm.to_string(),
    )
    .await;
    advance(&app, &clock, "2026-02-10T12:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "past_due");
    let inv = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(
        (inv["status"].clone(), inv["amount_due"].clone()),
        ("open".into(), 2000.into())
    );

    let settled = app
        .post_ok("/v1/credit_notes", &credit_note_body(&inv, 2000))
        .await;
    assert_eq!(settled["status"], "paid");
    assert_eq!(settled["amount_remaining"], 0);
    // Stripe: the subscription's latest invoice is paid, so it is active again, and no retry
    // runs any more.
    let s = subscription(&app, &sub["id"]).await;
    assert_eq!(s["status"], "active");
    advance(&app, &clock, "2026-02-20T00:00:00Z").await;
    assert_eq!(count(&app, "InvoicePaymentFailed").await, 1);
    assert_eq!(subscription(&app, &sub["id"]).await["status"], "active");
    app.assert_books_balance().await;
}

// 8. customer credit balance ------------------------------------------------------------------

#[tokio::test]
async fn a_downgrade_credit_goes_to_the_balance_and_pays_the_next_renewal() {
    let app = spawn_app(Kind::Sqlite).await;
    let clock = clock(&app, "2026-04-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let (basic, pro) = thirty_day_plans(&app).await;
    let sub = subscribe(&app, &cus, &pro, json!({})).await;
    assert_eq!(app.sandbox.charges_made(), 1);

    advance(&app, &clock, "2026-04-16T00:00:00Z").await;
    let changed = sub_post(
        &app,
        &sub,
        "",
        json!({"plan_id": basic, "proration_behavior": "always_invoice"}),
    )
    .await;
    assert_eq!(changed["pending_invoice_items"], 0);
    let inv = invoice(&app, &changed["latest_invoice"]).await;
    assert_ne!(inv["id"], sub["latest_invoice"]);
    assert_eq!(inv["billing_reason"], "subscription_update");
    assert_eq!(amounts(&inv), [-1500, 500]);
    assert_eq!(totals(&inv), (-1000, 0, -1000, 0, 0));
    assert_eq!(inv["credit_to_balance"], 1000);
    assert_eq!(inv["credit_applied"], 0);
    assert_eq!(inv["status"], "paid");
    assert_eq!(app.sandbox.charges_made(), 1, "a credit charges nothing");
    let adjusted = events_of(&app.all_events().await, "CustomerBalanceAdjusted");
    assert_eq!(adjusted.len(), 1);
    assert_eq!(adjusted[0]["balance_after"], -1000);

    advance(&app, &clock, "2026-05-02T00:00:00Z").await;
    let s = subscription(&app, &sub["id"]).await;
    let renewal = invoice(&app, &s["latest_invoice"]).await;
    assert_eq!(renewal["period_start"], "2026-05-01T00:00:00Z");
    assert_eq!(amounts(&renewal), [1000]);
    assert_eq!(renewal["total"], 1000);
    assert_eq!(renewal["credit_applied"], 1000);
    assert_eq!(renewal["amount_due"], 0);
    assert_eq!(renewal["amount_paid"], 0);
    assert_eq!(renewal["status"], "paid");
    assert_eq!(app.sandbox.charges_made(), 1, "the credit paid it");
    let adjusted = events_of(&app.all_events().await, "CustomerBalanceAdjusted");
    assert_eq!(adjusted.len(), 2);
    assert_eq!(adjusted[1]["balance_after"], 0);
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        3000,
        "only the first invoice was charged"
    );
    assert_eq!(
        account_balance(&tb, "usd", &format!("customer_balance:{cus}")),
        0,
        "the credit was used up"
    );
}

// 9. JPY with tax -----------------------------------------------------------------------------

#[tokio::test]
async fn jpy_renewals_with_an_exclusive_tax_are_exact_to_the_yen() {
    let app = spawn_app(Kind::Postgres).await;
    app.post_ok(
        "/v1/tax_rates",
        r#"{"display_name":"JP consumption tax","percentage":"10","inclusive":false,"country":"JP"}"#,
    )
    .await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "jpy", "JP", "tok_visa").await;
    let lite = plan(
        &app,
        json!({"name":"Lite","currency":"jpy","amount":980,"interval":"month"}),
    )
    .await;
    let seats = plan(
        &app,
        json!({"name":"Seats","currency":"jpy","amount":1333,"interval":"month"}),
    )
    .await;
    let a = subscribe(&app, &cus, &lite, json!({})).await;
    let b = subscribe(&app, &cus, &seats, json!({"quantity": 3})).await;
    assert_eq!(a["currency"], "jpy");
    let first = invoice(&app, &a["latest_invoice"]).await;
    assert_eq!(first["currency"], "jpy");
    assert_eq!(totals(&first), (980, 98, 1078, 1078, 1078));
    assert_eq!(first["lines"][0]["tax_amounts"][0]["amount"], 98);
    // 3 × ¥1,333 = ¥3,999; 10 % = ¥399.9 → ¥400.
    let first_b = invoice(&app, &b["latest_invoice"]).await;
    assert_eq!(totals(&first_b), (3999, 400, 4399, 4399, 4399));

    advance(&app, &clock, "2026-08-02T00:00:00Z").await;
    let events = app.all_events().await;
    let drafted = events_of(&events, "InvoiceDrafted");
    assert_eq!(drafted.len(), 6);
    for d in &drafted {
        let inv = invoice(&app, &d["invoice_id"]).await;
        assert_eq!(inv["status"], "paid", "{inv}");
        let expected = if inv["subscription"] == a["id"] {
            (980, 98, 1078, 1078, 1078)
        } else {
            assert_eq!(inv["subscription"], b["id"]);
            (3999, 400, 4399, 4399, 4399)
        };
        assert_eq!(totals(&inv), expected, "{inv}");
    }
    let renewals: Vec<&Value> = drafted
        .iter()
        .filter(|d| d["billing_reason"] == "subscription_cycle")
        .collect();
    assert_eq!(renewals.len(), 4);
    let paid: i64 = events_of(&events, "InvoicePaid")
        .iter()
        .map(|p| p["amount_paid"].as_i64().unwrap())
        .sum();
    assert_eq!(paid, 3 * 1078 + 3 * 4399);
    assert_eq!(app.sandbox.charges_made(), 6);
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "jpy", "cash:sandbox"),
        3 * 1078 + 3 * 4399
    );
}

// 10. concurrent advances ---------------------------------------------------------------------

async fn two_concurrent_advances(kind: Kind) {
    let app = spawn_app(kind).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let gold = gold(&app).await;
    subscribe(&app, &cus, &gold, json!({})).await;

    let path = format!("/v1/test_clocks/{clock}/advance");
    let body = r#"{"frozen_time":"2026-04-15T00:00:00Z"}"#;
    let (r1, r2) = tokio::join!(app.post(&path, body, None), app.post(&path, body, None));
    let statuses = [r1.status().as_u16(), r2.status().as_u16()];
    let texts = [r1.text().await.unwrap(), r2.text().await.unwrap()];
    for (s, t) in statuses.iter().zip(&texts) {
        assert!([200, 400, 409].contains(s), "{kind:?}: {s} {t}");
    }
    assert!(statuses.contains(&200), "{kind:?}: {statuses:?} {texts:?}");
    eprintln!("{kind:?}: concurrent advances answered {statuses:?}");

    let events = app.all_events().await;
    let starts: Vec<String> = events_of(&events, "SubscriptionRenewed")
        .iter()
        .map(|r| r["period_start"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-02-10T00:00:00Z",
            "2026-03-10T00:00:00Z",
            "2026-04-10T00:00:00Z"
        ],
        "{kind:?}"
    );
    assert_eq!(events_of(&events, "InvoiceDrafted").len(), 4, "{kind:?}");
    assert_eq!(events_of(&events, "InvoicePaid").len(), 4, "{kind:?}");
    assert_eq!(events_of(&events, "ChargeRequested").len(), 4, "{kind:?}");
    assert_eq!(events_of(&events, "ChargeSucceeded").len(), 4, "{kind:?}");
    let numbers: Vec<String> = events_of(&events, "InvoiceNumberAssigned")
        .iter()
        .map(|n| n["number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        numbers,
        ["KB-000001", "KB-000002", "KB-000003", "KB-000004"],
        "{kind:?}"
    );
    assert_eq!(app.sandbox.charges_made(), 4, "{kind:?}");
    let clock_now = app
        .get_ok(&format!("/v1/subscriptions/{}", {
            let s = events_of(&events, "SubscriptionCreated");
            s[0]["subscription_id"].as_str().unwrap().to_string()
        }))
        .await;
    assert_eq!(clock_now["current_period_start"], "2026-04-10T00:00:00Z");
    assert_eq!(clock_now["status"], "active");
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", "cash:sandbox"),
        4 * 2000,
        "{kind:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_advances_of_one_clock_renew_and_charge_once_on_postgres() {
    for _ in 0..3 {
        two_concurrent_advances(Kind::Postgres).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_advances_of_one_clock_renew_and_charge_once_on_sqlite() {
    for _ in 0..3 {
        two_concurrent_advances(Kind::Sqlite).await;
    }
}
