//! `/health`, `/ready`, `/metrics`, `/openapi.json`, and the JSON shape of routing errors.

use serde_json::{Value, json};

use crate::support::{Kind, error_of, spawn_app};

#[tokio::test]
async fn health_and_ready_need_no_key() {
    let app = spawn_app(Kind::Sqlite).await;
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "sqlite");
    assert_eq!(health["gateway"], "sandbox");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    app.post(
        "/payment/process",
        r#"{"amount":1000,"currency":"usd"}"#,
        None,
    )
    .await;
    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["head_position"], 2);
    // Every projection reports its checkpoint; the lag is what the slowest has not applied.
    let checkpoints = ready["projections"].as_object().unwrap();
    assert!(checkpoints.contains_key("journal") && checkpoints.contains_key("charges"));
    let slowest = checkpoints
        .values()
        .map(|v| v.as_i64().unwrap())
        .min()
        .unwrap();
    assert_eq!(ready["projection_lag"], 2 - slowest);
    // The in-process feed catches up: the lag drains to 0.
    let mut lag = ready["projection_lag"].as_i64().unwrap();
    for _ in 0..200 {
        if lag == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let r: Value = app
            .client
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        lag = r["projection_lag"].as_i64().unwrap();
    }
    assert_eq!(lag, 0);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_http_and_charge_counters() {
    let app = spawn_app(Kind::Sqlite).await;
    app.post(
        "/payment/process",
        r#"{"amount":1000,"currency":"usd"}"#,
        None,
    )
    .await;
    let anonymous = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/payment/process""#), "{text}");
    assert!(text.contains("http_request_duration_seconds"), "{text}");
    assert!(
        text.contains(r#"billing_charges_total{status="succeeded"}"#),
        "{text}"
    );
    assert!(text.contains("billing_appended_events"), "{text}");
}

#[tokio::test]
async fn openapi_document_is_generated_from_the_handlers() {
    let app = spawn_app(Kind::Sqlite).await;
    let anonymous = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let doc = app.get_ok("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/payment/process",
        "/payment/stripe/test",
        "/subscriptions/create",
        "/v1/charges",
        "/v1/refunds",
        "/v1/customers",
        "/v1/customers/{id}",
        "/v1/customers/{id}/payment_methods",
        "/v1/customers/{id}/payment_methods/{pm}",
        "/v1/customers/{id}/balance_transactions",
        "/v1/customers/{id}/personal_data",
        "/v1/customers/{id}/export",
        "/v1/plans",
        "/v1/plans/{id}/archive",
        "/v1/tax_rates",
        "/v1/subscriptions",
        "/v1/subscriptions/{id}",
        "/v1/subscriptions/{id}/cancel",
        "/v1/subscriptions/{id}/pause",
        "/v1/subscriptions/{id}/resume",
        "/v1/subscriptions/{id}/usage",
        "/v1/invoices",
        "/v1/invoices/{id}",
        "/v1/invoices/{id}/finalize",
        "/v1/invoices/{id}/pay",
        "/v1/invoices/{id}/void",
        "/v1/invoices/{id}/mark_uncollectible",
        "/v1/invoices/{id}/send",
        "/v1/credit_notes",
        "/v1/test_clocks",
        "/v1/test_clocks/{id}/advance",
        "/v1/events",
        "/v1/events/{id}",
        "/v1/audit/verify",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["ChargeObject"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// The document says what the service does: query parameters in the query (optional), path
/// parameters exactly the path's, the error body on every operation — the body the service
/// really sends —, and `Idempotency-Key` on every command.
#[tokio::test]
async fn openapi_document_describes_parameters_errors_and_idempotency_as_served() {
    let app = spawn_app(Kind::Sqlite).await;
    let doc = app.get_ok("/openapi.json").await;
    let not_commands = [
        "/webhooks/stripe",
        "/webhooks/paypal",
        "/payment/stripe/test",
    ];
    let mut commands = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let placeholders: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for p in &params {
                let at = p["in"].as_str().unwrap_or_default();
                assert!(
                    ["path", "query", "header"].contains(&at),
                    "{method} {path}: {p}"
                );
            }
            let mut in_path: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            in_path.sort_unstable();
            let mut want = placeholders.clone();
            want.sort_unstable();
            assert_eq!(in_path, want, "{method} {path}: path parameters");
            assert_eq!(
                op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Error",
                "{method} {path}: the error body"
            );
            let key = params
                .iter()
                .any(|p| p["in"] == "header" && p["name"] == "Idempotency-Key");
            let command = matches!(method.as_str(), "post" | "delete")
                && !not_commands.contains(&path.as_str());
            assert_eq!(key, command, "{method} {path}: Idempotency-Key");
            commands += usize::from(command);
        }
    }
    assert!(commands >= 30, "{commands} commands");
    let list = doc["paths"]["/v1/customers"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .clone();
    for p in &list {
        assert_eq!(
            (&p["in"], &p["required"]),
            (&json!("query"), &json!(false)),
            "{p}"
        );
    }
    let limit = &list.iter().find(|p| p["name"] == "limit").unwrap()["schema"];
    assert_eq!(
        (limit["minimum"].as_i64(), limit["maximum"].as_i64()),
        (Some(1), Some(100))
    );
    // What the service sends is what the schema says.
    let schema = &doc["components"]["schemas"]["ErrorObject"];
    let known: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let kinds = doc["components"]["schemas"]["ErrorType"]["enum"]
        .as_array()
        .unwrap()
        .clone();
    let refused = app
        .client
        .get(app.url("/v1/customers?limit=0"))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    let error = body["error"].as_object().unwrap();
    for field in error.keys() {
        assert!(
            known.contains(&field.as_str()),
            "undocumented field {field}"
        );
    }
    for field in schema["required"].as_array().unwrap() {
        assert!(
            error.contains_key(field.as_str().unwrap()),
            "missing {field}"
        );
    }
    assert!(kinds.contains(&error["type"]), "{error:?}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app(Kind::Sqlite).await;
    let missing = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(
        error_of(missing).await,
        (404, "not_found".into(), "resource_missing".into())
    );
    let wrong_method = app
        .client
        .get(app.url("/payment/process"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(wrong_method).await.0, 405);
}

#[tokio::test]
async fn audit_verify_over_http_needs_an_admin_key_and_reports_the_chain() {
    let app = spawn_app(Kind::Sqlite).await;
    for _ in 0..3 {
        app.post(
            "/payment/process",
            r#"{"amount":1000,"currency":"usd"}"#,
            None,
        )
        .await;
    }
    let url = app.url("/v1/audit/verify");
    let write = app
        .client
        .get(&url)
        .bearer_auth(&app.write_key)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(write).await.0, 403);

    let report: Value = app
        .client
        .get(&url)
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["checked"], 6);
    assert_eq!(report["last_position"], 6);
    assert!(report["first_break"].is_null());
    let head = app.store.head().await.unwrap();
    assert_eq!(report["last_hash"], head.hash.to_hex());

    let from_five: Value = app
        .client
        .get(format!("{url}?from=5"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(from_five["checked"], 2);

    for bad in ["?from=0", "?from=8", "?from=abc", "?to=3"] {
        let r = app
            .client
            .get(format!("{url}{bad}"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(error_of(r).await.0, 400, "{bad}");
    }
}

#[tokio::test]
async fn stripe_test_reports_the_sandbox_mode() {
    let app = spawn_app(Kind::Sqlite).await;
    let url = app.url("/payment/stripe/test");
    assert_eq!(app.client.post(&url).send().await.unwrap().status(), 401);
    let check: Value = app
        .client
        .post(&url)
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["gateway"], "sandbox");
    assert!(check["reachable"].is_null());
    // The test environment may or may not carry a key; the mode must agree with it.
    let configured = std::env::var("STRIPE_SECRET_KEY").is_ok_and(|k| !k.is_empty());
    assert_eq!(check["stripe_key_configured"], configured);
    if !configured {
        assert_eq!(check["mode"], "sandbox");
    }
}
