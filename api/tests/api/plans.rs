//! `POST /v1/plans` and `POST /v1/plans/{id}/archive`.

use serde_json::Value;

use crate::support::{Kind, error_of, spawn_app};

const BASIC: &str = r#"{"name":"Basic","currency":"usd","amount":1000,"interval":"month","trial_days":14,"prices":{"eur":900}}"#;

#[tokio::test]
async fn a_plan_is_created_as_an_event_and_answered_as_an_object() {
    let app = spawn_app(Kind::Sqlite).await;
    let response = app.post("/v1/plans", BASIC, None).await;
    assert_eq!(response.status(), 200);
    let position: i64 = response.headers()["billing-position"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let plan: Value = response.json().await.unwrap();
    assert!(plan["id"].as_str().unwrap().starts_with("plan_"));
    assert_eq!(plan["object"], "plan");
    assert_eq!(plan["active"], true);
    assert_eq!(
        (plan["amount"].clone(), plan["currency"].clone()),
        (1000.into(), "usd".into())
    );
    assert_eq!(plan["prices"]["eur"], 900);
    assert_eq!(
        (plan["interval"].clone(), plan["interval_count"].clone()),
        ("month".into(), 1.into())
    );
    assert_eq!(plan["usage_type"], "licensed");
    assert_eq!(plan["trial_period_days"], 14);

    let events = app.all_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "PlanCreated");
    assert_eq!(
        events[0].stream_id.as_str(),
        format!("plan-{}", plan["id"].as_str().unwrap())
    );
    assert_eq!(events[0].payload["interval"], "month");
    assert_eq!(events[0].position.0, position);
}

#[tokio::test]
async fn archiving_is_recorded_once_and_unknown_plans_are_404() {
    let app = spawn_app(Kind::Sqlite).await;
    let plan: Value = app
        .post("/v1/plans", BASIC, None)
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/plans/{}/archive", plan["id"].as_str().unwrap());
    let archived = app.post(&path, "", None).await;
    assert_eq!(archived.status(), 200);
    let archived: Value = archived.json().await.unwrap();
    assert_eq!(archived["active"], false);
    assert_eq!(archived["id"], plan["id"]);
    let again = app.post(&path, "", None).await;
    assert_eq!(again.status(), 200, "archiving twice is not an error");
    let types: Vec<String> = app
        .all_events()
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        ["PlanCreated", "PlanArchived"],
        "but it is recorded once"
    );

    let unknown = format!("/v1/plans/{}/archive", ledger::ids::PlanId::new());
    assert_eq!(error_of(app.post(&unknown, "", None).await).await.0, 404);
    assert_eq!(
        error_of(app.post("/v1/plans/plan_nope/archive", "", None).await)
            .await
            .0,
        404
    );
    assert_eq!(app.all_events().await.len(), 2);
}

#[tokio::test]
async fn bad_plans_are_4xx_and_append_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let cases: &[(&str, &str)] = &[
        (
            r#"{"name":"A","currency":"usd","amount":-1,"interval":"month"}"#,
            "amount_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":100000000,"interval":"month"}"#,
            "amount_invalid",
        ),
        (
            r#"{"name":"A","currency":"xyz","amount":1,"interval":"month"}"#,
            "currency_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"decade"}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","interval_count":0}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","interval_count":13}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","interval_count":-1}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","trial_days":731}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","prices":{"usd":5}}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","prices":{"zzz":5}}"#,
            "currency_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","usage_type":"flat"}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"","currency":"usd","amount":1,"interval":"month"}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1,"interval":"month","colour":"red"}"#,
            "parameter_invalid",
        ),
        (
            r#"{"name":"A","currency":"usd","amount":1.5,"interval":"month"}"#,
            "parameter_invalid",
        ),
    ];
    for (body, code) in cases {
        let (status, kind, got) = error_of(app.post("/v1/plans", body, None).await).await;
        assert_eq!(
            (status, kind.as_str(), got.as_str()),
            (400, "invalid_request_error", *code),
            "{body}"
        );
    }
    assert_eq!(app.head().await.0, 0, "nothing appended");
}

#[tokio::test]
async fn plan_creation_is_idempotent_and_needs_a_write_key() {
    let app = spawn_app(Kind::Postgres).await;
    let first = app.post("/v1/plans", BASIC, Some("plan-1")).await;
    assert_eq!(first.status(), 200);
    let body = first.text().await.unwrap();
    let second = app.post("/v1/plans", BASIC, Some("plan-1")).await;
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.unwrap(), body);
    let other = r#"{"name":"Pro","currency":"usd","amount":5000,"interval":"year"}"#;
    assert_eq!(
        error_of(app.post("/v1/plans", other, Some("plan-1")).await)
            .await
            .0,
        422
    );
    assert_eq!(app.all_events().await.len(), 1);

    let read_only = app
        .client
        .post(app.url("/v1/plans"))
        .bearer_auth(&app.read_key)
        .body(BASIC)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(read_only).await.0, 403);
    assert_eq!(app.all_events().await.len(), 1);
}
