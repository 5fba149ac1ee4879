//! A customer's Stripe payment methods (issue 5, item 1): attaching a `pm_…` makes one Stripe
//! Customer for our customer (once) and attaches the method to it; charges go out with that
//! customer, so renewals can be charged off-session; the card's country feeds fraud screening.

use gateways::stand_in::StripeStandIn;
use serde_json::{Value, json};

use crate::support::{Kind, error_of, spawn_app_stripe};

#[tokio::test]
async fn attaching_a_pm_links_it_to_one_stripe_customer_and_charges_carry_it() {
    let stripe = StripeStandIn::start().await;
    let app = spawn_app_stripe(Kind::Sqlite, &stripe).await;
    let c = app
        .post_ok(
            "/v1/customers",
            &json!({"email": "s@example.com", "currency": "eur"}).to_string(),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let path = format!("/v1/customers/{id}/payment_methods");
    let c = app
        .post_ok(
            &path,
            &json!({"gateway": "stripe", "token": "pm_card_visa"}).to_string(),
        )
        .await;
    assert_eq!(c["payment_methods"][0]["country"], "US", "{c}");
    let c = app
        .post_ok(
            &path,
            &json!({"gateway": "stripe", "token": "pm_card_visa_fr"}).to_string(),
        )
        .await;
    assert_eq!(c["payment_methods"][1]["country"], "FR", "{c}");
    let customers = stripe.customers();
    assert_eq!(customers.len(), 1, "one Stripe customer for ours");
    assert_eq!(customers[0]["metadata"]["billing_customer"], id.as_str());
    let cus = customers[0]["id"].as_str().unwrap();
    assert_eq!(stripe.attached_to("pm_card_visa").as_deref(), Some(cus));

    let r = app
        .post(
            "/v1/charges",
            &json!({"customer_id": id, "amount": 1500, "currency": "eur"}).to_string(),
            Some("sc-1"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let paid: Value = r.json().await.unwrap();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(stripe.last_intent().unwrap()["customer"], cus);

    // A method Stripe does not know: 400, nothing attached.
    let before = app.head().await;
    let (status, _, code) = error_of(
        app.post(
            &path,
            &json!({"gateway": "stripe", "token": "pm_nope"}).to_string(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "payment_method_invalid"));
    assert_eq!(app.head().await, before);
    // Stripe down: 503, nothing attached.
    stripe.fail_before_acting(10);
    let (status, _, code) = error_of(
        app.post(
            &path,
            &json!({"gateway": "stripe", "token": "pm_card_mastercard"}).to_string(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (503, "gateway_unavailable"));
    assert_eq!(app.head().await, before);
}
