//! Customers: personal data sealed per customer, payment methods as gateway tokens, and GDPR
//! erasure by destroying the customer's data key.

use serde_json::Value;

use crate::support::{Kind, TestApp, account_balance, error_of, spawn_app};

const ADA: &str = r#"{"name":"Ada Lovelace","email":"ada@example.com","phone":"+44 20 7946 0000",
  "address":{"line1":"12 St James's Square","city":"London","postal_code":"SW1Y 4JH","country":"gb"},
  "currency":"gbp","metadata":{"crm":"A-17"}}"#;

async fn create(app: &TestApp) -> Value {
    app.post_ok("/v1/customers", ADA).await
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

async fn personal_data_in_clear(app: &TestApp) -> bool {
    app.all_events().await.iter().any(|e| {
        let text = format!("{} {:?}", e.payload, e.metadata);
        [
            // Whole values: a short fragment could turn up by chance in random ids or ciphertext.
            "Ada Lovelace",
            "ada@example.com",
            "7946 0000",
            "St James's",
            "SW1Y 4JH",
            "\"crm\"",
        ]
        .iter()
        .any(|p| text.contains(p))
    })
}

async fn customer_personal_data(app: &TestApp, customer: &str) -> Option<String> {
    let view = app.customers.load(customer.parse().unwrap()).await.unwrap();
    view.personal.and_then(|p| p.name)
}

#[tokio::test]
async fn personal_data_is_answered_but_recorded_only_sealed_on_both_backends() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let app = spawn_app(kind).await;
        let c = create(&app).await;
        assert!(id(&c).starts_with("cus_"));
        assert_eq!(c["object"], "customer");
        assert_eq!(c["name"], "Ada Lovelace");
        assert_eq!(c["email"], "ada@example.com");
        assert_eq!(c["address"]["city"], "London");
        assert_eq!(c["metadata"]["crm"], "A-17");
        assert_eq!(
            (c["currency"].clone(), c["balance"].clone()),
            ("gbp".into(), 0.into())
        );
        assert_eq!(c["tax_exempt"], "none");
        assert_eq!(c["personal_data_erased"], false);

        let events = app.all_events().await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type, "CustomerCreated");
        assert_eq!(events[0].stream_id.as_str(), format!("customer-{}", id(&c)));
        assert!(
            events[0].payload["personal"]
                .as_str()
                .unwrap()
                .starts_with("v1.")
        );
        // Where the customer is taxed stays readable: tax and the books need it.
        assert_eq!(events[0].payload["tax_location"]["country"], "GB");
        assert!(!personal_data_in_clear(&app).await, "{kind:?}");
        assert_eq!(
            customer_personal_data(&app, id(&c)).await.as_deref(),
            Some("Ada Lovelace")
        );
    }
}

#[tokio::test]
async fn an_update_changes_only_what_it_sends() {
    let app = spawn_app(Kind::Sqlite).await;
    let c = create(&app).await;
    let path = format!("/v1/customers/{}", id(&c));
    let u = app
        .post_ok(&path, r#"{"name":"Ada King","phone":"","tax_exempt":true}"#)
        .await;
    assert_eq!(u["name"], "Ada King");
    assert_eq!(u["email"], "ada@example.com");
    assert_eq!(u["phone"], Value::Null);
    assert_eq!(u["tax_exempt"], "exempt");
    assert_eq!(u["address"]["city"], "London");
    let events = app.all_events().await;
    assert_eq!(events.last().unwrap().event_type, "CustomerUpdated");
    assert_eq!(events.last().unwrap().payload["tax_exempt"], true);
    assert!(!personal_data_in_clear(&app).await);
    // Sending what it already is records nothing.
    let before = app.head().await;
    app.post_ok(&path, r#"{"tax_exempt":true}"#).await;
    assert_eq!(app.head().await, before);
}

#[tokio::test]
async fn payment_methods_are_gateway_tokens_and_the_first_is_the_default() {
    let app = spawn_app(Kind::Postgres).await;
    let c = create(&app).await;
    let path = format!("/v1/customers/{}/payment_methods", id(&c));
    let with_visa = app
        .post_ok(&path, r#"{"gateway":"sandbox","token":"tok_visa"}"#)
        .await;
    let visa = with_visa["payment_methods"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(visa.starts_with("pm_"));
    assert_eq!(with_visa["default_payment_method"], visa.as_str());
    assert_eq!(with_visa["name"], "Ada Lovelace");
    // The same token again: nothing new.
    let head = app.head().await;
    app.post_ok(&path, r#"{"gateway":"sandbox","token":"tok_visa"}"#)
        .await;
    assert_eq!(app.head().await, head);
    let both = app
        .post_ok(
            &path,
            r#"{"gateway":"stripe","token":"pm_card_mastercard","set_default":true}"#,
        )
        .await;
    assert_eq!(both["payment_methods"].as_array().unwrap().len(), 2);
    assert_ne!(both["default_payment_method"], visa.as_str());

    let response = app.delete(&format!("{path}/{visa}"), None).await;
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap();
    assert_eq!(after["payment_methods"].as_array().unwrap().len(), 1);
    let again = app.delete(&format!("{path}/{visa}"), None).await;
    assert_eq!(error_of(again).await.0, 404);
}

#[tokio::test]
async fn bad_input_is_a_4xx_and_records_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let c = create(&app).await;
    let pm_path = format!("/v1/customers/{}/payment_methods", id(&c));
    let head = app.head().await;
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            "/v1/customers".into(),
            r#"{"email":"not-an-email"}"#,
            400,
            "parameter_invalid",
        ),
        (
            "/v1/customers".into(),
            r#"{"currency":"xyz"}"#,
            400,
            "currency_invalid",
        ),
        (
            "/v1/customers".into(),
            r#"{"nickname":"x"}"#,
            400,
            "parameter_invalid",
        ),
        ("/v1/customers".into(), r#"{"name":"#, 400, "json_invalid"),
        (
            "/v1/customers".into(),
            r#"{"address":{"country":"GBR"}}"#,
            400,
            "parameter_invalid",
        ),
        (
            pm_path.clone(),
            r#"{"gateway":"sandbox","token":"4242424242424242"}"#,
            400,
            "payment_method_invalid",
        ),
        (
            pm_path.clone(),
            r#"{"gateway":"visa","token":"tok_visa"}"#,
            400,
            "parameter_invalid",
        ),
        (
            "/v1/customers/cus_00000000000000000000000000000000".into(),
            r#"{"name":"x"}"#,
            404,
            "resource_missing",
        ),
        (
            "/v1/customers/nope/payment_methods".into(),
            r#"{"gateway":"sandbox","token":"tok_visa"}"#,
            404,
            "resource_missing",
        ),
    ];
    for (path, body, status, code) in cases {
        let (s, _, c) = error_of(app.post(&path, body, None).await).await;
        assert_eq!((s, c.as_str()), (status, code), "{path} {body}");
    }
    assert_eq!(app.head().await, head, "nothing was recorded");
}

#[tokio::test]
async fn erasure_destroys_the_key_so_the_log_keeps_money_facts_but_loses_the_person() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let app = spawn_app(kind).await;
        let c = app
            .post("/v1/customers", ADA, Some("create-ada"))
            .await
            .json::<Value>()
            .await
            .unwrap();
        let path = format!("/v1/customers/{}", id(&c));
        app.post_ok(
            &format!("{path}/payment_methods"),
            r#"{"gateway":"sandbox","token":"tok_visa"}"#,
        )
        .await;

        let response = app.delete(&format!("{path}/personal_data"), None).await;
        assert_eq!(response.status(), 200);
        let erased: Value = response.json().await.unwrap();
        assert_eq!(erased["personal_data_erased"], true);
        assert_eq!(
            (erased["name"].clone(), erased["email"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(erased["payment_methods"].as_array().unwrap().len(), 1);
        assert_eq!(erased["currency"], "gbp");

        let events = app.all_events().await;
        assert_eq!(
            events.last().unwrap().event_type,
            "CustomerPersonalDataErased"
        );
        // The sealed copies are still in the log, unchanged, and no longer open.
        assert!(
            events[0].payload["personal"]
                .as_str()
                .unwrap()
                .starts_with("v1.")
        );
        assert_eq!(customer_personal_data(&app, id(&c)).await, None);
        // The stored idempotent answer held the name in clear: it is gone with the key.
        let replay = app.post("/v1/customers", ADA, Some("create-ada")).await;
        assert_ne!(replay.status(), 200);
        assert!(!replay.text().await.unwrap().contains("Ada"));
        // No new personal data for an erased customer; erasing again changes nothing.
        let (status, _, code) = error_of(app.post(&path, r#"{"name":"Ada"}"#, None).await).await;
        assert_eq!((status, code.as_str()), (400, "customer_erased"));
        let head = app.head().await;
        assert_eq!(
            app.delete(&format!("{path}/personal_data"), None)
                .await
                .status(),
            200
        );
        assert_eq!(app.head().await, head);
        // The hash chain is intact: nothing in the log was changed.
        let verify = app
            .client
            .get(app.url("/v1/audit/verify"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        let verify: Value = verify.json().await.unwrap();
        assert_eq!(verify["first_break"], Value::Null, "{verify}");
        assert_eq!(verify["checked"], app.head().await.0);
        app.assert_books_balance().await;
    }
}

#[tokio::test]
async fn a_customer_is_charged_with_its_default_or_a_named_payment_method() {
    let app = spawn_app(Kind::Sqlite).await;
    let c = create(&app).await;
    let cus = id(&c).to_string();
    let charge = |body: serde_json::Value| {
        let app = &app;
        async move { app.post("/v1/charges", &body.to_string(), None).await }
    };
    let (status, _, code) = error_of(
        charge(serde_json::json!({"customer_id": cus, "amount": 500, "currency": "gbp"})).await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "payment_method_missing"));
    let pms = format!("/v1/customers/{cus}/payment_methods");
    app.post_ok(&pms, r#"{"gateway":"sandbox","token":"tok_visa"}"#)
        .await;
    let with_both = app
        .post_ok(
            &pms,
            r#"{"gateway":"sandbox","token":"tok_chargeDeclined"}"#,
        )
        .await;
    let declining = with_both["payment_methods"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let ok =
        charge(serde_json::json!({"customer_id": cus, "amount": 500, "currency": "gbp"})).await;
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(
        (ok["status"].clone(), ok["customer"].clone()),
        ("succeeded".into(), cus.clone().into())
    );
    let declined = charge(
        serde_json::json!({"customer_id": cus, "amount": 500, "currency": "gbp",
        "payment_method": declining}),
    )
    .await;
    assert_eq!(error_of(declined).await.0, 402);
    let other = create(&app).await;
    let (status, _, _) = error_of(
        charge(
            serde_json::json!({"customer_id": id(&other), "amount": 500, "currency": "gbp",
            "payment_method": declining}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 404, "another customer's method");
    assert_eq!((app.sandbox.charges_made(), app.sandbox.calls()), (1, 2));
    let tb = app.assert_books_balance().await;
    assert_eq!(account_balance(&tb, "gbp", "cash:sandbox"), 500);
}

#[tokio::test]
async fn balance_adjustments_add_up_and_bad_ones_record_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let c = create(&app).await;
    let path = format!("/v1/customers/{}/balance_transactions", id(&c));
    let credited = app
        .post_ok(
            &path,
            r#"{"amount":-2500,"currency":"gbp","description":"goodwill"}"#,
        )
        .await;
    assert_eq!(credited["balance"], -2500);
    let owed = app
        .post_ok(
            &path,
            r#"{"amount":1000,"currency":"gbp","description":"correction"}"#,
        )
        .await;
    assert_eq!(owed["balance"], -1500);
    let head = app.head().await;
    for (body, code) in [
        (
            r#"{"amount":0,"currency":"gbp","description":"x"}"#,
            "amount_invalid",
        ),
        (
            r#"{"amount":5,"currency":"eur","description":"x"}"#,
            "currency_locked",
        ),
        (
            r#"{"amount":5,"currency":"gbp","description":""}"#,
            "parameter_invalid",
        ),
        (
            r#"{"amount":9223372036854775807,"currency":"gbp","description":"x"}"#,
            "amount_invalid",
        ),
    ] {
        let (status, _, c) = error_of(app.post(&path, body, None).await).await;
        assert_eq!((status, c.as_str()), (400, code), "{body}");
    }
    assert_eq!(app.head().await, head);
    let tb = app.assert_books_balance().await;
    assert_eq!(
        account_balance(&tb, "gbp", &format!("customer_balance:{}", id(&c))),
        -1500,
        "credit held for the customer"
    );
}

#[tokio::test]
async fn a_customer_is_read_and_exported_and_after_erasure_nothing_personal_is_left() {
    let app = spawn_app(Kind::Postgres).await;
    let c = create(&app).await;
    let got = app.get_ok(&format!("/v1/customers/{}", id(&c))).await;
    assert_eq!(got, c);
    let export_path = format!("/v1/customers/{}/export", id(&c));
    let read_key = app
        .client
        .get(app.url(&export_path))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(read_key.status(), 403, "an export needs an admin key");
    let export = |app: &TestApp| {
        let path = export_path.clone();
        let req = app.client.get(app.url(&path)).bearer_auth(&app.admin_key);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let before = export(&app).await;
    assert_eq!(before["customer"]["email"], "ada@example.com");
    assert_eq!(before["events"][0]["type"], "CustomerCreated");
    app.delete(&format!("/v1/customers/{}/personal_data", id(&c)), None)
        .await;
    let after = export(&app).await;
    assert!(!after.to_string().contains("Ada"), "{after}");
    assert_eq!(after["customer"]["personal_data_erased"], true);
    let missing = app
        .client
        .get(app.url("/v1/customers/cus_00000000000000000000000000000000"))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
