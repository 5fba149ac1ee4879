//! A customer's balance in both directions (issue 3, Stripe's behaviour): credit (negative) pays
//! the next invoice up to its total; a debt (positive, e.g. a manual adjustment for a late fee)
//! is collected whole with the next invoice, and owed again if that invoice is voided. Credit
//! notes credit an invoice's own sale, not the debt it collected; the books balance throughout.

use serde_json::{Value, json};

use crate::billing::{clock, customer};
use crate::support::{Kind, TestApp, account_balance, error_of, spawn_app};

async fn owe(app: &TestApp, cus: &str, amount: i64) {
    let body = json!({"amount": amount, "currency": "usd", "description": "late fee"});
    app.post_ok(
        &format!("/v1/customers/{cus}/balance_transactions"),
        &body.to_string(),
    )
    .await;
}

async fn balance(app: &TestApp, cus: &str) -> i64 {
    let head = app.head().await.0;
    app.get_ok(&format!("/v1/customers/{cus}?min_position={head}"))
        .await["balance"]
        .as_i64()
        .unwrap()
}

async fn one_off(app: &TestApp, cus: &str, amount: i64) -> Value {
    let body = json!({"customer_id": cus, "items": [{"description": "x", "amount": amount}]});
    app.post_ok("/v1/invoices", &body.to_string()).await
}

#[tokio::test]
async fn what_a_customer_owes_is_collected_with_its_next_invoice_and_owed_again_if_voided() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    owe(&app, &cus, 500).await;
    assert_eq!(balance(&app, &cus).await, 500);

    let inv = one_off(&app, &cus, 1000).await;
    let amounts = |i: &Value| {
        (
            i["total"].clone(),
            i["credit_applied"].clone(),
            i["owed_applied"].clone(),
            i["amount_due"].clone(),
        )
    };
    assert_eq!(
        amounts(&inv),
        (1000.into(), 0.into(), 500.into(), 1500.into()),
        "{inv}"
    );
    assert_eq!(balance(&app, &cus).await, 0, "taken from the balance");
    let paid = app
        .post_ok(
            &format!("/v1/invoices/{}/pay", inv["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["amount_paid"], 1500);
    assert_eq!(app.sandbox.charges_made(), 1);

    // A credit note refunds this invoice's sale (1000), not the fee it collected.
    let note = |amount: i64| {
        json!({"invoice_id": inv["id"], "amount": amount, "reason": "order_change"}).to_string()
    };
    let (status, _, code) = error_of(app.post("/v1/credit_notes", &note(1001), None).await).await;
    assert_eq!((status, code.as_str()), (400, "amount_invalid"));
    app.post_ok("/v1/credit_notes", &note(1000)).await;

    // Owed again, then an invoice voided: the debt is owed again, nothing charged.
    owe(&app, &cus, 300).await;
    let voided = one_off(&app, &cus, 200).await;
    assert_eq!(
        amounts(&voided),
        (200.into(), 0.into(), 300.into(), 500.into())
    );
    assert_eq!(balance(&app, &cus).await, 0);
    let path = format!("/v1/invoices/{}/void", voided["id"].as_str().unwrap());
    let v = app.post_ok(&path, "").await;
    assert_eq!(v["status"], "void", "{v}");
    assert_eq!(balance(&app, &cus).await, 300, "owed again");
    assert_eq!(app.sandbox.charges_made(), 1);

    // Credited in full on an open invoice: the debt it collects (the 300 owed again, and 200
    // more) is still to pay.
    owe(&app, &cus, 200).await;
    let credited = one_off(&app, &cus, 1000).await;
    let finalized = app
        .post_ok(
            &format!("/v1/invoices/{}/finalize", credited["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(finalized["amount_due"], 1500, "{finalized}");
    let full = json!({"invoice_id": credited["id"], "amount": 1000, "reason": "order_change"});
    let after = app.post_ok("/v1/credit_notes", &full.to_string()).await;
    assert_eq!(
        (after["status"].clone(), after["amount_remaining"].clone()),
        ("open".into(), 500.into()),
        "{after}"
    );
    let paid = app
        .post_ok(
            &format!("/v1/invoices/{}/pay", credited["id"].as_str().unwrap()),
            "",
        )
        .await;
    assert_eq!(paid["amount_paid"], 500, "{paid}");

    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "usd", &format!("customer_balance:{cus}")),
        0,
        "{tb}"
    );
    assert_eq!(
        account_balance(&tb, "usd", &format!("receivable:{cus}")),
        0,
        "{tb}"
    );
    // Cash: 1500 taken, 1000 refunded by the credit note, then 500.
    assert_eq!(account_balance(&tb, "usd", "cash:sandbox"), 1000, "{tb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_notes_racing_direct_refunds_never_leave_a_note_without_its_refund() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let inv = one_off(&app, &cus, 1000).await;
    let paid = app
        .post_ok(
            &format!("/v1/invoices/{}/pay", inv["id"].as_str().unwrap()),
            "",
        )
        .await;
    let charge = paid["charge"].as_str().unwrap().to_string();
    // 6 notes and 6 refunds of 150 each: 1,800 asked of 1,000.
    let asks = (0..12).map(|i| {
        let (app, inv, charge) = (&app, &inv, &charge);
        async move {
            let (path, body) = if i % 2 == 0 {
                (
                    "/v1/credit_notes",
                    json!({"invoice_id": inv["id"], "amount": 150, "reason": "order_change"}),
                )
            } else {
                ("/v1/refunds", json!({"charge_id": charge, "amount": 150}))
            };
            let key = format!("race-{i}");
            app.post(path, &body.to_string(), Some(&key))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(asks).await;
    assert!(
        statuses.iter().all(|s| [200, 400, 409].contains(s)),
        "{statuses:?}"
    );

    let stream = ledger::StreamId::new(format!("charge-{charge}")).unwrap();
    let events = app.store.read_stream(&stream).await.unwrap();
    let refunded: Vec<(String, i64)> = events
        .iter()
        .filter(|e| e.event_type == "RefundRequested")
        .map(|e| {
            (
                e.payload["refund_id"].as_str().unwrap().to_string(),
                e.payload["amount"].as_i64().unwrap(),
            )
        })
        .collect();
    let succeeded: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == "RefundSucceeded")
        .map(|e| e.payload["refund_id"].as_str().unwrap().to_string())
        .collect();
    let total: i64 = refunded
        .iter()
        .filter(|(id, _)| succeeded.contains(id))
        .map(|(_, a)| a)
        .sum();
    assert!(total <= 1000, "never beyond the charge: {total}");
    let head = app.head().await.0;
    let now = app
        .get_ok(&format!(
            "/v1/invoices/{}?min_position={head}",
            inv["id"].as_str().unwrap()
        ))
        .await;
    let notes = now["credit_notes"].as_array().unwrap();
    for note in notes {
        let id: ledger::ids::CreditNoteId = note["id"].as_str().unwrap().parse().unwrap();
        let refund = ledger::ids::RefundId::derived(&id.to_string()).to_string();
        assert!(
            succeeded.contains(&refund),
            "credit note {id} has its refund: {succeeded:?}"
        );
    }
    let ok = |path: usize| {
        statuses
            .iter()
            .enumerate()
            .filter(|(i, s)| i % 2 == path && **s == 200)
            .count()
    };
    assert_eq!(notes.len(), ok(0), "every note answered 200 is issued");
    let answered = i64::try_from(ok(0) + ok(1)).unwrap();
    assert_eq!(
        total,
        150 * answered,
        "each 200 refunded once: {statuses:?}"
    );
    assert!(answered <= 6, "six of 150 fit in 1,000: {statuses:?}");
    app.assert_books_balance().await;
}

#[tokio::test]
async fn a_credit_note_on_an_invoice_refunded_in_full_by_the_refunds_api_is_refused_as_too_large() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-06-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let inv = one_off(&app, &cus, 1000).await;
    let inv_id = inv["id"].as_str().unwrap();
    let paid = app.post_ok(&format!("/v1/invoices/{inv_id}/pay"), "").await;
    let charge = paid["charge"].as_str().unwrap();
    let all = json!({"charge_id": charge});
    app.post_ok("/v1/refunds", &all.to_string()).await;
    let before = app.head().await;

    let note = json!({"invoice_id": inv_id, "amount": 100, "reason": "order_change"});
    let refused = app
        .post("/v1/credit_notes", &note.to_string(), Some("late-note"))
        .await;
    let (status, kind, code) = error_of(refused).await;
    assert_eq!(
        (status, kind.as_str(), code.as_str()),
        (400, "invalid_request_error", "amount_invalid")
    );
    assert_eq!(app.head().await, before, "nothing appended");
}
