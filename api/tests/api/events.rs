//! The audit log over HTTP: `GET /v1/events` and `GET /v1/events/{id}`.

use serde_json::{Value, json};

use crate::support::{Kind, TestApp, spawn_app};

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(&app.read_key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_log_is_read_in_order_by_page_stream_and_type_on_both_backends() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let app = spawn_app(kind).await;
        let cus = app
            .post_ok(
                "/v1/customers",
                r#"{"email":"a@example.com","currency":"usd"}"#,
            )
            .await;
        let cus = cus["id"].as_str().unwrap().to_string();
        app.post_ok(
            &format!("/v1/customers/{cus}/payment_methods"),
            r#"{"gateway":"sandbox","token":"tok_visa"}"#,
        )
        .await;
        let plan = app
            .post_ok(
                "/v1/plans",
                r#"{"name":"G","currency":"usd","amount":900,"interval":"month"}"#,
            )
            .await;
        let body = json!({"customer_id": cus, "plan_id": plan["id"]});
        app.post_ok("/v1/subscriptions", &body.to_string()).await;
        let all = app.all_events().await;
        assert!(all.len() > 10);

        // Pages of 10 from the start, then after the last position seen, cover the log once.
        let mut after = 0;
        let mut seen = vec![];
        loop {
            let (status, page) = get(&app, &format!("/v1/events?after={after}")).await;
            assert_eq!(status, 200);
            let data = page["data"].as_array().unwrap();
            assert!(data.len() <= 10);
            seen.extend(data.iter().map(|e| e["position"].as_i64().unwrap()));
            after = *seen.last().unwrap();
            if page["has_more"] == false {
                break;
            }
        }
        let expected: Vec<i64> = all.iter().map(|e| e.position.0).collect();
        assert_eq!(seen, expected, "{kind:?}");

        // The chain can be followed from the answers alone.
        let (_, page) = get(&app, "/v1/events?limit=100").await;
        let data = page["data"].as_array().unwrap();
        for pair in data.windows(2) {
            assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
        }

        let (_, paid) = get(&app, "/v1/events?type=InvoicePaid&limit=100").await;
        assert_eq!(paid["data"].as_array().unwrap().len(), 1);
        assert_eq!(paid["data"][0]["type"], "InvoicePaid");
        let stream = format!("customer-{cus}");
        let (_, mine) = get(&app, &format!("/v1/events?stream_id={stream}&limit=100")).await;
        let types: Vec<&str> = mine["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types[..3],
            [
                "CustomerCreated",
                "PaymentMethodAttached",
                "DefaultPaymentMethodSet"
            ]
        );
        let (_, both) = get(
            &app,
            &format!("/v1/events?stream_id={stream}&type=CustomerCreated"),
        )
        .await;
        assert_eq!(both["data"].as_array().unwrap().len(), 1);

        let one = &data[0];
        let (status, got) = get(&app, &format!("/v1/events/{}", one["id"].as_str().unwrap())).await;
        assert_eq!((status, &got), (200, one));
        let (status, _) = get(&app, "/v1/events/00000000-0000-0000-0000-000000000000").await;
        assert_eq!(status, 404);
        for bad in [
            "/v1/events?limit=0",
            "/v1/events?limit=101",
            "/v1/events?after=-1",
            "/v1/events?stream_id=a%20b",
            "/v1/events?color=red",
        ] {
            let (status, body) = get(&app, bad).await;
            assert_eq!(status, 400, "{bad}: {body}");
        }
    }
}
