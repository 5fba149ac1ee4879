//! `POST /v1/tax_rates`.

use serde_json::Value;

use crate::support::{Kind, error_of, spawn_app};

#[tokio::test]
async fn a_tax_rate_is_recorded_and_answered() {
    let app = spawn_app(Kind::Sqlite).await;
    let body = r#"{"display_name":"CA sales tax","percentage":"8.25","inclusive":false,"country":"us","state":"CA"}"#;
    let response = app.post("/v1/tax_rates", body, None).await;
    assert_eq!(response.status(), 200);
    let rate: Value = response.json().await.unwrap();
    assert!(rate["id"].as_str().unwrap().starts_with("tr_"));
    assert_eq!(rate["object"], "tax_rate");
    assert_eq!(
        rate["percentage"], "8.25",
        "a decimal string, exactly as given"
    );
    assert_eq!(
        (rate["country"].clone(), rate["state"].clone()),
        ("US".into(), "CA".into())
    );
    assert_eq!(rate["inclusive"], false);
    let events = app.all_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "TaxRateCreated");
    assert_eq!(events[0].payload["percentage"], "8.25");
}

#[tokio::test]
async fn bad_tax_rates_are_400_and_append_nothing() {
    let app = spawn_app(Kind::Sqlite).await;
    let cases = [
        r#"{"display_name":"X","percentage":"-1","inclusive":false,"country":"US"}"#,
        r#"{"display_name":"X","percentage":"100.5","inclusive":false,"country":"US"}"#,
        r#"{"display_name":"X","percentage":"8.12345","inclusive":false,"country":"US"}"#,
        r#"{"display_name":"X","percentage":"1e2","inclusive":false,"country":"US"}"#,
        r#"{"display_name":"X","percentage":8.25,"inclusive":false,"country":"US"}"#,
        r#"{"display_name":"X","percentage":"8","inclusive":false,"country":"USA"}"#,
        r#"{"display_name":"","percentage":"8","inclusive":false,"country":"US"}"#,
        r#"{"display_name":"X","percentage":"8","inclusive":false,"country":"US","state":"C A"}"#,
        r#"{"display_name":"X","percentage":"8","country":"US"}"#,
    ];
    for body in cases {
        let (status, kind, _) = error_of(app.post("/v1/tax_rates", body, None).await).await;
        assert_eq!(
            (status, kind.as_str()),
            (400, "invalid_request_error"),
            "{body}"
        );
    }
    assert_eq!(app.head().await.0, 0);
}
