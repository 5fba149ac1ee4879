//! The read-model API: lists served by the projections, read-your-writes with `min_position`,
//! and the journal's trial balance after a billing scenario.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::billing::{advance, clock, customer, plan, subscribe};
use crate::support::{Kind, TestApp, error_of, spawn_app};

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .expect("request")
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

async fn one_off_invoice(app: &TestApp, cus: &str, amount: i64) -> Value {
    let body = json!({"customer_id": cus, "items": [{"description": "Work", "amount": amount}]});
    app.post_ok("/v1/invoices", &body.to_string()).await
}

#[tokio::test]
async fn lists_come_from_the_read_models_with_read_your_writes() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let app = spawn_app(kind).await;
        let clock = clock(&app, "2026-05-01T00:00:00Z").await;
        let a = customer(&app, &clock, "usd", "US", "tok_visa").await;
        let b = customer(&app, &clock, "usd", "US", "tok_visa").await;
        let mut paid = Vec::new();
        for amount in [1000, 2000, 3000] {
            let inv = one_off_invoice(&app, &a, amount).await;
            let id = inv["id"].as_str().unwrap().to_string();
            app.post_ok(&format!("/v1/invoices/{id}/pay"), "").await;
            paid.push(id);
        }
        let draft = one_off_invoice(&app, &b, 500).await;
        let head = app.head().await.0;

        // Read-your-writes: the position the last command reached.
        let first = get(
            &app,
            &format!("/v1/invoices?customer={a}&limit=2&min_position={head}"),
        )
        .await;
        assert_eq!(first.status(), 200, "{kind:?}");
        let reached: i64 = first.headers()["billing-position"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(reached >= head);
        let first: Value = first.json().await.unwrap();
        assert_eq!(
            (first["object"].clone(), first["has_more"].clone()),
            ("list".into(), true.into())
        );
        let mut seen = ids(&first);
        let last = seen.last().unwrap().clone();
        let rest = app
            .get_ok(&format!(
                "/v1/invoices?customer={a}&limit=2&starting_after={last}"
            ))
            .await;
        assert_eq!(rest["has_more"], false);
        seen.extend(ids(&rest));
        let mut want = paid.clone();
        want.sort();
        seen.sort();
        assert_eq!(seen, want, "{kind:?}: each invoice once over the pages");

        let by_path = app
            .get_ok(&format!("/v1/customers/{a}/invoices?status=paid"))
            .await;
        assert_eq!(ids(&by_path).len(), 3);
        assert!(
            by_path["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["status"] == "paid")
        );
        let drafts = app
            .get_ok(&format!("/v1/invoices?status=draft&min_position={head}"))
            .await;
        assert_eq!(ids(&drafts), [draft["id"].as_str().unwrap()]);

        // Objects render as the command API renders them (personal data opened).
        let customers = app
            .get_ok(&format!("/v1/customers?limit=100&min_position={head}"))
            .await;
        assert_eq!(ids(&customers).len(), 2);
        assert_eq!(customers["data"][0]["email"], "finance@example.com");
        let single = app.get_ok(&format!("/v1/invoices/{}", paid[0])).await;
        let listed = by_path["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == paid[0].as_str())
            .unwrap()
            .clone();
        assert_eq!(
            listed, single,
            "a listed invoice equals the invoice read from its stream"
        );

        // Each read model has its own checkpoint: read-your-writes asks each for the position.
        let charges = app
            .get_ok(&format!("/v1/customers/{a}/charges?min_position={head}"))
            .await;
        assert_eq!(ids(&charges).len(), 3);
        let charge_id = &ids(&charges)[0];
        let charge = app.get_ok(&format!("/v1/charges/{charge_id}")).await;
        assert_eq!(charge["status"], "succeeded");
        assert_eq!(ids(&app.get_ok("/v1/charges?status=failed").await).len(), 0);

        let p = plan(
            &app,
            json!({"name":"Gold","currency":"usd","amount":900,"interval":"month"}),
        )
        .await;
        let pos = app.head().await.0;
        let got = app
            .get_ok(&format!("/v1/plans/{p}?min_position={pos}"))
            .await;
        assert_eq!(got["id"], p.as_str());
        assert_eq!(
            ids(&app.get_ok("/v1/plans?status=active").await),
            [p.as_str()]
        );

        // Bad input: 400 with a JSON error.
        for (path, code) in [
            ("/v1/invoices?limit=0", "limit_invalid"),
            ("/v1/invoices?limit=101", "limit_invalid"),
            ("/v1/invoices?status=sent", "status_invalid"),
            ("/v1/invoices?customer=nobody", "customer_invalid"),
            ("/v1/invoices?colour=red", "parameter_invalid"),
            ("/v1/invoices?min_position=-1", "min_position_invalid"),
            ("/v1/ledger/trial_balance?as_of=yesterday", "as_of_invalid"),
        ] {
            let (status, _, got) = error_of(get(&app, path).await).await;
            assert_eq!((status, got.as_str()), (400, code), "{path}");
        }
        let missing = get(&app, "/v1/charges/ch_00000000000000000000000000").await;
        assert_eq!(missing.status(), 404);
    }
}

#[tokio::test]
async fn a_read_behind_the_asked_position_answers_503_with_retry_after() {
    // No worker: the read models stay behind the log.
    let app = crate::support::spawn_app_opts(Kind::Sqlite, Default::default(), false).await;
    let body = r#"{"amount":1000,"currency":"usd","payment_method":"tok_visa"}"#;
    app.post_ok("/payment/process", body).await;
    let head = app.head().await.0;
    let r = get(&app, &format!("/v1/charges?min_position={head}")).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let (_, _, code) = error_of(r).await;
    assert_eq!(code, "read_model_behind");
    // Without min_position the list answers what it has, saying how far it is.
    let r = get(&app, "/v1/charges").await;
    assert_eq!(r.headers()["billing-position"], "0");
    // A position beyond the log's head can never be reached: 400, not a wait.
    let (status, _, code) =
        error_of(get(&app, &format!("/v1/charges?min_position={}", head + 1)).await).await;
    assert_eq!((status, code.as_str()), (400, "min_position_invalid"));
    // An unknown cursor is a 404, as Stripe answers it.
    let app2 = spawn_app(Kind::Sqlite).await;
    let r = get(&app2, "/v1/charges?starting_after=ch_nothing").await;
    assert_eq!(r.status(), 404);
}

/// Sums `(debit − credit)` per `(currency, account)` of a trial balance answer.
fn balances(tb: &Value) -> BTreeMap<(String, String), i64> {
    let mut out = BTreeMap::new();
    for c in tb["currencies"].as_array().unwrap() {
        assert_eq!(c["debits"], c["credits"], "{c}");
        assert_eq!(c["balanced"], true);
        for a in c["accounts"].as_array().unwrap() {
            out.insert(
                (
                    c["currency"].as_str().unwrap().to_string(),
                    a["account"].as_str().unwrap().to_string(),
                ),
                a["balance"].as_i64().unwrap(),
            );
        }
    }
    out
}

#[tokio::test]
async fn the_trial_balance_balances_per_currency_after_a_billing_scenario() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-01-10T00:00:00Z").await;
    app.post_ok(
        "/v1/tax_rates",
        r#"{"display_name":"CA sales tax","percentage":"10","inclusive":false,"country":"US","state":"CA"}"#,
    )
    .await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    app.post_ok(
        &format!("/v1/customers/{cus}"),
        r#"{"address":{"country":"US","state":"CA"}}"#,
    )
    .await;
    let basic = plan(
        &app,
        json!({"name":"Basic","currency":"usd","amount":1000,"interval":"month"}),
    )
    .await;
    let pro = plan(
        &app,
        json!({"name":"Pro","currency":"usd","amount":3000,"interval":"month"}),
    )
    .await;
    let sub = subscribe(&app, &cus, &basic, json!({})).await;
    advance(&app, &clock, "2026-01-25T00:00:00Z").await;
    let body = json!({"plan_id": pro, "proration_behavior": "always_invoice"});
    app.post_ok(
        &format!("/v1/subscriptions/{}", sub["id"].as_str().unwrap()),
        &body.to_string(),
    )
    .await;
    advance(&app, &clock, "2026-03-11T00:00:00Z").await;
    // A refund through a credit note on the first (paid) invoice.
    let note =
        json!({"invoice_id": sub["latest_invoice"], "amount": 250, "reason": "order_change"});
    app.post_ok("/v1/credit_notes", &note.to_string()).await;
    // An invoice credited before payment, then voided.
    let open = one_off_invoice(&app, &cus, 700).await;
    let open_id = open["id"].as_str().unwrap();
    app.post_ok(&format!("/v1/invoices/{open_id}/finalize"), "")
        .await;
    let cn = json!({"invoice_id": open_id, "amount": 200, "reason": "order_change"});
    app.post_ok("/v1/credit_notes", &cn.to_string()).await;
    app.post_ok(&format!("/v1/invoices/{open_id}/void"), "")
        .await;
    // A manual credit, and a one-off charge in another currency, partly refunded.
    app.post_ok(
        &format!("/v1/customers/{cus}/balance_transactions"),
        r#"{"amount":-300,"currency":"usd","description":"goodwill"}"#,
    )
    .await;
    let direct = app
        .post_ok(
            "/payment/process",
            r#"{"amount":5000,"currency":"eur","payment_method":"tok_visa"}"#,
        )
        .await;
    app.post_ok(
        "/v1/refunds",
        &json!({"charge_id": direct["id"], "amount": 1200}).to_string(),
    )
    .await;

    let head = app.head().await.0;
    let tb = app
        .get_ok(&format!("/v1/ledger/trial_balance?min_position={head}"))
        .await;
    let b = balances(&tb);
    let at = |cur: &str, acct: &str| {
        b.get(&(cur.to_string(), acct.to_string()))
            .copied()
            .unwrap_or(0)
    };

    // Cash: what the gateway took, less what it gave back, from the log itself.
    let events = app.all_events().await;
    let mut requested = BTreeMap::new();
    let mut refund_amounts = BTreeMap::new();
    let mut cash: BTreeMap<String, i64> = BTreeMap::new();
    for e in &events {
        let p = &e.payload;
        match e.event_type.as_str() {
            "ChargeRequested" => {
                requested.insert(
                    p["charge_id"].to_string(),
                    (
                        p["currency"].as_str().unwrap().to_string(),
                        p["amount"].as_i64().unwrap(),
                    ),
                );
            }
            "ChargeSucceeded" => {
                let (c, a) = requested[&p["charge_id"].to_string()].clone();
                *cash.entry(c).or_insert(0) += a;
            }
            "RefundRequested" => {
                refund_amounts.insert(
                    p["refund_id"].to_string(),
                    (p["charge_id"].to_string(), p["amount"].as_i64().unwrap()),
                );
            }
            "RefundSucceeded" => {
                let (charge, a) = refund_amounts[&p["refund_id"].to_string()].clone();
                let c = requested[&charge].0.clone();
                *cash.entry(c).or_insert(0) -= a;
            }
            _ => {}
        }
    }
    assert_eq!(at("usd", "cash:sandbox"), cash["usd"]);
    assert_eq!(at("eur", "cash:sandbox"), 5000 - 1200);
    assert_eq!(at("eur", "revenue"), -5000, "a one-off charge is revenue");
    assert_eq!(at("eur", "refunds"), 1200);
    // The credit note's refund of 250 on the first invoice (1,000 + 100 tax) gives back its tax
    // share: 250 × 100 / 1,100 = 22.7 → 23.
    assert_eq!(
        at("usd", "refunds"),
        250 - 23,
        "the credit note's refund, without tax"
    );
    // 200 credited on 700 + 70 tax: 200 × 70 / 770 = 18.2 → 18 of tax; then the void reverses
    // the 52 of tax still open and the rest.
    assert_eq!(at("usd", "credit_notes"), 200 - 18);
    let open_total = open["total"].as_i64().unwrap();
    assert_eq!(open_total, 770, "700 and 10 % tax");
    assert_eq!(
        at("usd", "invoice_voids"),
        open_total - 200 - 52,
        "what the credit note left, voided, less the tax reversed"
    );
    assert_eq!(
        at("usd", &format!("customer_balance:{cus}")),
        -300,
        "credit held for the customer"
    );
    assert_eq!(at("usd", "balance_adjustments"), 300);
    assert_eq!(
        at("usd", &format!("receivable:{cus}")),
        0,
        "every invoice paid or voided"
    );
    // Tax payable is what the finalized invoices not voided taxed, in the rate's jurisdiction,
    // less the refund's share.
    let invoices = app
        .get_ok(&format!("/v1/customers/{cus}/invoices?limit=100"))
        .await;
    let taxed: i64 = invoices["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] != "draft" && i["status"] != "void")
        .map(|i| i["tax"].as_i64().unwrap())
        .sum();
    assert!(taxed > 0);
    assert_eq!(at("usd", "tax_payable:US-CA"), -(taxed - 23));

    // As of a moment before anything happened: nothing.
    let before = app
        .get_ok("/v1/ledger/trial_balance?as_of=2026-01-01T00:00:00Z")
        .await;
    assert_eq!(before["currencies"], json!([]));
}

#[tokio::test]
async fn refunds_and_credit_notes_are_listed_and_fetched_by_their_own_id() {
    let app = spawn_app(Kind::Sqlite).await;
    let body = r#"{"amount":1000,"currency":"usd","payment_method":"tok_visa"}"#;
    let ch = app.post_ok("/payment/process", body).await;
    let mut refunds = Vec::new();
    for amount in [300, 200] {
        let r = json!({"charge_id": ch["id"], "amount": amount});
        refunds.push(app.post_ok("/v1/refunds", &r.to_string()).await);
    }
    let clock = clock(&app, "2026-05-01T00:00:00Z").await;
    let cus = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let inv = one_off_invoice(&app, &cus, 1000).await;
    let inv_id = inv["id"].as_str().unwrap();
    app.post_ok(&format!("/v1/invoices/{inv_id}/finalize"), "")
        .await;
    let cn = json!({"invoice_id": inv_id, "amount": 250, "reason": "order_change"});
    let credited = app.post_ok("/v1/credit_notes", &cn.to_string()).await;
    let head = app.head().await.0;

    // Each refund, listed and fetched, is the object POST /v1/refunds answered.
    let list = app
        .get_ok(&format!("/v1/refunds?min_position={head}"))
        .await;
    let mut listed = ids(&list);
    listed.sort();
    let mut want: Vec<String> = refunds
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    assert_eq!(listed, want);
    for r in &refunds {
        let got = app
            .get_ok(&format!("/v1/refunds/{}", r["id"].as_str().unwrap()))
            .await;
        assert_eq!(&got, r);
    }
    assert_eq!(
        ids(&app.get_ok("/v1/refunds?status=succeeded").await).len(),
        2
    );
    assert_eq!(
        ids(&app.get_ok("/v1/refunds?status=pending").await).len(),
        0
    );

    let notes = app
        .get_ok(&format!("/v1/credit_notes?min_position={head}"))
        .await;
    let note_id = credited["credit_notes"][0]["id"].as_str().unwrap();
    assert_eq!(ids(&notes), [note_id]);
    let note = app.get_ok(&format!("/v1/credit_notes/{note_id}")).await;
    assert_eq!(note, notes["data"][0]);
    assert_eq!(
        (
            note["invoice"].as_str(),
            note["customer"].as_str(),
            note["amount"].as_i64()
        ),
        (Some(inv_id), Some(cus.as_str()), Some(250))
    );
    assert_eq!(
        (note["currency"].as_str(), note["type"].as_str()),
        (Some("usd"), Some("pre_payment"))
    );

    let (status, _, code) = error_of(get(&app, &format!("/v1/refunds?customer={cus}")).await).await;
    assert_eq!((status, code.as_str()), (400, "parameter_invalid"));
    assert_eq!(get(&app, "/v1/refunds/re_nothing").await.status(), 404);
    assert_eq!(get(&app, "/v1/credit_notes/cn_nothing").await.status(), 404);
}

#[tokio::test]
async fn failed_charges_are_read_as_charge_objects_not_errors() {
    let app = crate::support::spawn_app(crate::support::Kind::Sqlite).await;
    let r = app
        .post(
            "/payment/process",
            r#"{"amount":500,"currency":"usd","payment_method":"tok_chargeDeclined"}"#,
            Some("read-failed"),
        )
        .await;
    assert_eq!(r.status(), 402);
    let e: serde_json::Value = r.json().await.unwrap();
    let id = e["error"]["charge"].as_str().unwrap().to_string();
    let head = app.head().await.0;
    let one = app
        .client
        .get(app.url(&format!("/v1/charges/{id}?min_position={head}")))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let one: serde_json::Value = one.json().await.unwrap();
    assert_eq!(
        (one["object"].as_str(), one["status"].as_str()),
        (Some("charge"), Some("failed")),
        "{one}"
    );
    assert_eq!(one["failure_code"], "card_declined");
    let list = app
        .get_ok(&format!("/v1/charges?min_position={head}&status=failed"))
        .await;
    assert_eq!(list["data"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["data"][0]["object"], "charge", "{list}");
}
