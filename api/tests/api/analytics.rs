//! Analytics over HTTP after a subscription scenario with a test clock: MRR movements, churn,
//! the forecast's arithmetic, payment outcomes and revenue per month.

use serde_json::{Value, json};

use crate::billing::{advance, clock, customer, plan, subscribe};
use crate::support::{Kind, TestApp, spawn_app};

async fn read(app: &TestApp, path: &str) -> Value {
    let head = app.head().await.0;
    let sep = if path.contains('?') { '&' } else { '?' };
    app.get_ok(&format!("{path}{sep}min_position={head}")).await
}

#[tokio::test]
async fn mrr_churn_forecast_payments_and_revenue_follow_the_subscriptions() {
    let app = spawn_app(Kind::Postgres).await;
    let clock = clock(&app, "2026-01-01T00:00:00Z").await;
    let a = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let b = customer(&app, &clock, "usd", "US", "tok_visa").await;
    let c = customer(&app, &clock, "usd", "US", "tok_visa").await;
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
    let annual = plan(
        &app,
        json!({"name":"Annual","currency":"usd","amount":12000,"interval":"year"}),
    )
    .await;

    let sub_a = subscribe(&app, &a, &basic, json!({})).await; // new 1,000
    subscribe(&app, &b, &annual, json!({})).await; // new 12,000 / 12 = 1,000
    advance(&app, &clock, "2026-02-05T00:00:00Z").await;
    let sub_c = subscribe(&app, &c, &basic, json!({"quantity": 3})).await; // new 3,000
    advance(&app, &clock, "2026-02-10T00:00:00Z").await;
    let up = json!({"plan_id": pro, "proration_behavior": "create_prorations"});
    app.post_ok(
        &format!("/v1/subscriptions/{}", sub_a["id"].as_str().unwrap()),
        &up.to_string(),
    )
    .await; // expansion 2,000
    advance(&app, &clock, "2026-03-03T00:00:00Z").await;
    app.post_ok(
        &format!("/v1/subscriptions/{}/cancel", sub_c["id"].as_str().unwrap()),
        "{}",
    )
    .await; // churn 3,000
    // A declined one-off charge, for the payment analytics.
    let declined = app
        .post(
            "/payment/process",
            r#"{"amount":700,"currency":"usd","payment_method":"tok_chargeDeclined"}"#,
            None,
        )
        .await;
    assert_eq!(declined.status(), 402);

    let mrr = read(&app, "/v1/analytics/mrr?currency=usd").await;
    let usd = &mrr["data"][0];
    assert_eq!(
        (usd["mrr"].clone(), usd["subscriptions"].clone()),
        (4000.into(), 2.into()),
        "{mrr}"
    );
    let moves: Vec<(String, i64, i64, i64)> = usd["movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().to_string(),
                m["new"].as_i64().unwrap(),
                m["expansion"].as_i64().unwrap(),
                m["churn"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        moves,
        [
            ("2026-01".to_string(), 2000, 0, 0),
            ("2026-02".to_string(), 3000, 2000, 0),
            ("2026-03".to_string(), 0, 0, 3000),
        ]
    );

    let churn = read(&app, "/v1/analytics/churn?through=2026-03").await;
    let march = &churn["data"][0]["months"][2];
    assert_eq!(march["mrr_start"], 7000);
    assert_eq!(march["revenue_churn_rate"], "0.4286");
    assert_eq!(march["subscription_churn_rate"], "0.3333");

    // c = mean(0 / 2,000 for February, 3,000 / 7,000 for March) = 3/14; mrr_k = 4,000 × (11/14)^k.
    let forecast = read(&app, "/v1/analytics/forecast?months=3&through=2026-03").await;
    let points: Vec<i64> = forecast["data"][0]["forecast"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["mrr"].as_i64().unwrap())
        .collect();
    assert_eq!(points, [3143, 2469, 1940], "{forecast}");
    assert_eq!(forecast["data"][0]["monthly_churn_rate"], "0.2143");
    assert!(forecast["method"].as_str().unwrap().contains("(1 − c)^k"));

    // Quiet months count as months without churn: through May, c = mean(3/7, 0, 0) = 1/7.
    let later = read(&app, "/v1/analytics/forecast?months=1&through=2026-05").await;
    assert_eq!(later["data"][0]["forecast"][0]["mrr"], 3429, "{later}");
    assert_eq!(later["data"][0]["monthly_churn_rate"], "0.1429");

    // Payments: what the log says succeeded and failed.
    let events = app.all_events().await;
    let count = |t: &str| events.iter().filter(|e| e.event_type == t).count() as i64;
    let payments = read(&app, "/v1/analytics/payments?from=2026-01-01&to=2026-12-31").await;
    let p = &payments["data"][0];
    assert_eq!(p["succeeded"], count("ChargeSucceeded"));
    assert_eq!(p["failed"], count("ChargeFailed"));
    assert_eq!(p["failed"], 1);
    assert_eq!(p["failure_reasons"][0]["count"], 1);
    assert!(p["success_rate"].as_str().unwrap().starts_with("0."), "{p}");

    // Revenue per month from the journal: January bills Basic for A and a year for B; February
    // renews A and starts C (the upgrade's prorations wait for March's invoice).
    let revenue = read(
        &app,
        "/v1/analytics/revenue?from=2026-01-01&to=2026-02-28&interval=month",
    )
    .await;
    let gross: Vec<(String, i64, i64)> = revenue["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap().to_string(),
                r["gross"].as_i64().unwrap(),
                r["net"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        gross,
        [
            ("2026-01".to_string(), 13000, 13000),
            ("2026-02".to_string(), 4000, 4000)
        ]
    );
    let daily = read(&app, "/v1/analytics/revenue?from=2026-02-05&to=2026-02-05").await;
    assert_eq!(daily["data"][0]["gross"], 3000);

    for path in [
        "/v1/analytics/revenue?from=2026-02-30&to=2026-03-01",
        "/v1/analytics/revenue?from=2026-03-01&to=2026-02-01",
        "/v1/analytics/revenue?from=2026-01-01&to=2026-02-01&interval=week",
        "/v1/analytics/forecast?months=0",
        "/v1/analytics/forecast?through=2026-13",
        "/v1/analytics/payments?from=2026-01-01&to=2026-01-31&interval=day",
        "/v1/analytics/mrr?currency=xyz",
    ] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&app.read_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
    }
}
