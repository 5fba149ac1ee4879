//! `StripeGateway` (async-stripe) against the Stripe stand-in: charges, declines, idempotent
//! retries after failures on either side of the gateway's work, timeouts, refunds.

use std::time::Duration;

use gateways::stand_in::StripeStandIn;
use gateways::stripe::{StripeConfig, StripeGateway};
use gateways::{ChargeOutcome, ChargeRequest, FailureCode, Gateway, GatewayError, RefundRequest};
use ledger::money::{Currency, Money};

fn gateway(stand_in: &StripeStandIn) -> StripeGateway {
    gateway_with(stand_in, "sk_test_standin", Duration::from_secs(5))
}

fn gateway_with(stand_in: &StripeStandIn, key: &str, timeout: Duration) -> StripeGateway {
    StripeGateway::new(StripeConfig {
        secret_key: key.into(),
        api_base: stand_in.base_url().trim_end_matches('/').into(),
        timeout,
    })
    .unwrap()
}

fn charge(key: &str, token: &str, amount: i64) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.into(),
        amount: Money::new(amount, Currency::USD),
        payment_method: token.into(),
        description: Some("test".into()),
        customer_ref: Some("cus_1".into()),
        off_session: false,
        gateway_customer: None,
    }
}

fn refund(key: &str, pi: &str, amount: i64) -> RefundRequest {
    RefundRequest {
        idempotency_key: key.into(),
        gateway_charge_id: pi.into(),
        amount: Money::new(amount, Currency::USD),
    }
}

#[tokio::test]
async fn a_charge_is_a_confirmed_payment_intent_under_our_idempotency_key() {
    let s = StripeStandIn::start().await;
    let g = gateway(&s);
    let out = g
        .charge(charge("charge-a", "pm_card_visa", 1999))
        .await
        .unwrap();
    let ChargeOutcome::Succeeded { gateway_charge_id } = &out else {
        panic!("{out:?}")
    };
    assert!(gateway_charge_id.starts_with("pi_"), "{gateway_charge_id}");
    assert_eq!(s.succeeded_charges(), 1);
    assert_eq!(
        s.requests(),
        [(
            "POST".into(),
            "/v1/payment_intents".into(),
            Some("charge-a".into())
        )]
    );
    // The same key again: Stripe's first answer, no second charge.
    let again = g
        .charge(charge("charge-a", "pm_card_visa", 1999))
        .await
        .unwrap();
    assert_eq!(again, out);
    assert_eq!(s.succeeded_charges(), 1);
    // A second charge has a key of its own.
    let other = g.charge(charge("charge-b", "tok_visa", 500)).await.unwrap();
    assert_ne!(other.gateway_charge_id(), out.gateway_charge_id());
    assert_eq!(s.succeeded_charges(), 2);
}

#[tokio::test]
async fn the_same_key_with_other_parameters_is_refused_for_good() {
    let s = StripeStandIn::start().await;
    let g = gateway(&s);
    g.charge(charge("charge-k", "pm_card_visa", 100))
        .await
        .unwrap();
    let e = g
        .charge(charge("charge-k", "pm_card_visa", 200))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    assert!(!e.is_retryable());
    assert_eq!(s.succeeded_charges(), 1);
}

#[tokio::test]
async fn declines_map_to_our_failure_codes() {
    let s = StripeStandIn::start().await;
    let g = gateway(&s);
    let cases = [
        ("pm_card_chargeDeclined", FailureCode::CardDeclined),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            FailureCode::InsufficientFunds,
        ),
        ("tok_chargeDeclinedFraudulent", FailureCode::Fraudulent),
        (
            "pm_card_chargeDeclinedExpiredCard",
            FailureCode::ExpiredCard,
        ),
        (
            "pm_card_chargeDeclinedIncorrectCvc",
            FailureCode::IncorrectCvc,
        ),
        (
            "pm_card_chargeDeclinedProcessingError",
            FailureCode::ProcessingError,
        ),
        (
            "pm_card_authenticationRequired",
            FailureCode::Other("authentication_required".into()),
        ),
    ];
    for (i, (token, want)) in cases.into_iter().enumerate() {
        match g.charge(charge(&format!("charge-d{i}"), token, 700)).await {
            Ok(ChargeOutcome::Declined {
                failure_code,
                gateway_charge_id,
                message,
            }) => {
                assert_eq!(failure_code, want, "{token}");
                assert!(gateway_charge_id.starts_with("pi_"), "{token}");
                assert!(!message.is_empty());
            }
            other => panic!("{token}: {other:?}"),
        }
    }
    assert_eq!(s.succeeded_charges(), 0);
    // An unknown payment method is a final refusal, not a decline.
    let e = g
        .charge(charge("charge-x", "pm_nope", 700))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
}

#[tokio::test]
async fn a_5xx_is_retryable_and_the_retry_under_the_same_key_charges_once() {
    let s = StripeStandIn::start().await;
    let g = gateway(&s);
    // Before Stripe acted.
    s.fail_before_acting(1);
    let e = g
        .charge(charge("charge-r1", "pm_card_visa", 300))
        .await
        .unwrap_err();
    assert!(
        matches!(e, GatewayError::Unavailable(_)) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(s.succeeded_charges(), 0);
    assert!(
        g.charge(charge("charge-r1", "pm_card_visa", 300))
            .await
            .unwrap()
            .is_succeeded()
    );
    assert_eq!(s.succeeded_charges(), 1);
    // After Stripe acted: the answer was lost, the retry gets the first one.
    s.fail_after_acting(1);
    let e = g
        .charge(charge("charge-r2", "pm_card_visa", 300))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(s.succeeded_charges(), 2);
    assert!(
        g.charge(charge("charge-r2", "pm_card_visa", 300))
            .await
            .unwrap()
            .is_succeeded()
    );
    assert_eq!(s.succeeded_charges(), 2);
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_and_the_outcome_is_found_by_asking_again() {
    let s = StripeStandIn::start().await;
    let g = gateway_with(&s, "sk_test_standin", Duration::from_millis(200));
    s.set_delay(Duration::from_millis(600));
    let e = g
        .charge(charge("charge-t", "pm_card_visa", 300))
        .await
        .unwrap_err();
    assert_eq!(e, GatewayError::Timeout);
    s.set_delay(Duration::ZERO);
    // The slow request did reach the stand-in and will be answered; asking again with the same
    // key gives its answer (or performs it, if it had not run yet): one charge either way.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        g.charge(charge("charge-t", "pm_card_visa", 300))
            .await
            .unwrap()
            .is_succeeded()
    );
    assert_eq!(s.succeeded_charges(), 1);
}

#[tokio::test]
async fn refunds_are_partial_repeatable_idempotent_and_never_beyond_the_charge() {
    let s = StripeStandIn::start().await;
    let g = gateway(&s);
    let pi = g
        .charge(charge("charge-f", "pm_card_visa", 1000))
        .await
        .unwrap();
    let pi = pi.gateway_charge_id();
    let r1 = g.refund(refund("refund-1", pi, 400)).await.unwrap();
    assert!(r1.gateway_refund_id.starts_with("re_"));
    assert_eq!(g.refund(refund("refund-1", pi, 400)).await.unwrap(), r1);
    let r2 = g.refund(refund("refund-2", pi, 600)).await.unwrap();
    assert_ne!(r2, r1);
    assert_eq!(s.refunds(), 2);
    let e = g.refund(refund("refund-3", pi, 1)).await.unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    let e = g
        .refund(refund("refund-4", "pi_unknown", 1))
        .await
        .unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    assert_eq!(s.refunds(), 2);
}

#[tokio::test]
async fn ping_tells_whether_stripe_answers_with_this_key() {
    let s = StripeStandIn::start().await;
    assert_eq!(gateway(&s).ping().await, Ok(()));
    // Our key refused: our configuration's fault, not a payment's — retryable once fixed.
    let bad = gateway_with(&s, "pk_test_wrong_kind", Duration::from_secs(5));
    assert!(matches!(
        bad.ping().await,
        Err(GatewayError::Unauthorized(_))
    ));
    let e = bad
        .charge(charge("charge-bad-key", "pm_card_visa", 100))
        .await
        .unwrap_err();
    assert!(
        matches!(e, GatewayError::Unauthorized(_)) && e.is_retryable(),
        "{e:?}"
    );
    let base = s.base_url().to_string();
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let gone = StripeGateway::new(StripeConfig {
        secret_key: "sk_test_x".into(),
        api_base: base,
        timeout: Duration::from_secs(2),
    })
    .unwrap();
    let e = gone.ping().await.unwrap_err();
    assert!(matches!(e, GatewayError::Unreachable(_)), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn a_pm_is_linked_to_one_stripe_customer_per_customer_and_charged_with_it() {
    use gateways::LinkRequest;
    let s = StripeStandIn::start().await;
    let g = gateway(&s);
    let link = |gateway_customer: Option<String>, pm: &str| LinkRequest {
        customer_ref: "cus_ours_1".into(),
        gateway_customer,
        payment_method: pm.into(),
    };
    let first = g.link(link(None, "pm_card_visa")).await.unwrap();
    let cus = first.gateway_customer.clone().expect("a Stripe customer");
    assert!(cus.starts_with("cus_"));
    assert_eq!(first.country.as_deref(), Some("US"));
    let customers = s.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["metadata"]["billing_customer"], "cus_ours_1");
    // The second method joins the same customer; a retry of the first changes nothing.
    let second = g
        .link(link(Some(cus.clone()), "pm_card_visa_fr"))
        .await
        .unwrap();
    assert_eq!(second.gateway_customer.as_deref(), Some(cus.as_str()));
    assert_eq!(second.country.as_deref(), Some("FR"));
    assert_eq!(g.link(link(None, "pm_card_visa")).await.unwrap(), first);
    assert_eq!(s.customers().len(), 1);
    assert_eq!(
        s.attached_to("pm_card_visa_fr").as_deref(),
        Some(cus.as_str())
    );
    // Tokens are single-use: nothing to link.
    assert_eq!(
        g.link(link(None, "tok_visa")).await.unwrap(),
        Default::default()
    );
    // An attached method is charged with its customer (Stripe refuses it without).
    let mut req = charge("charge-linked", "pm_card_visa", 900);
    let e = g.charge(req.clone()).await.unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
    req.idempotency_key = "charge-linked-2".into();
    req.gateway_customer = Some(cus.clone());
    req.off_session = true;
    assert!(g.charge(req).await.unwrap().is_succeeded());
    assert_eq!(s.last_intent().unwrap()["customer"], cus.as_str());
    // An unknown method is refused, nothing linked.
    let e = g.link(link(Some(cus), "pm_nope")).await.unwrap_err();
    assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
}

fn hold(key: &str, pi: &str) -> gateways::CaptureRequest {
    gateways::CaptureRequest {
        idempotency_key: key.into(),
        gateway_charge_id: pi.into(),
        amount: Money::new(4_000, Currency::USD),
    }
}

#[tokio::test]
async fn an_authorization_reports_radars_risk_level_and_is_captured_or_canceled_once() {
    let s = StripeStandIn::start().await;
    let g = gateway(&s);
    assert!(g.authorizes());
    let out = g
        .authorize(charge("charge-r", "pm_card_riskLevelElevated", 4_000))
        .await
        .unwrap();
    let ChargeOutcome::Authorized {
        gateway_charge_id: pi,
        risk_level,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(risk_level.as_deref(), Some("elevated"));
    assert_eq!(s.intent(&pi).unwrap()["status"], "requires_capture");
    assert_eq!(s.succeeded_charges(), 0, "authorized only");
    // A capture whose answer is lost, asked again under its key: captured once.
    s.fail_after_acting_on("/capture", 1);
    let lost = g.capture(hold("charge-r:capture", &pi)).await.unwrap_err();
    assert!(lost.is_retryable(), "{lost}");
    let captured = g.capture(hold("charge-r:capture", &pi)).await.unwrap();
    assert!(captured.is_succeeded(), "{captured:?}");
    assert_eq!(s.succeeded_charges(), 1);
    // A captured payment cannot be canceled: refused, not retryable.
    let refused = g.void(hold("charge-r:cancel", &pi)).await.unwrap_err();
    assert!(
        matches!(refused, GatewayError::InvalidRequest(_)),
        "{refused}"
    );

    let out = g
        .authorize(charge("charge-n", "tok_visa", 4_000))
        .await
        .unwrap();
    let ChargeOutcome::Authorized {
        gateway_charge_id: pi,
        risk_level,
    } = out
    else {
        panic!("{out:?}")
    };
    assert_eq!(risk_level.as_deref(), Some("normal"));
    g.void(hold("charge-n:cancel", &pi)).await.unwrap();
    g.void(hold("charge-n:cancel", &pi)).await.unwrap();
    let pi = s.intent(&pi).unwrap();
    assert_eq!(pi["status"], "canceled");
    assert_eq!(pi["cancellation_reason"], "fraudulent");
    let after = g
        .capture(hold("charge-n:capture", pi["id"].as_str().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(after, GatewayError::InvalidRequest(_)), "{after}");
    assert_eq!(
        s.succeeded_charges(),
        1,
        "nothing captured after the cancel"
    );
    // A declining card declines at authorization, as at a charge.
    let declined = g
        .authorize(charge("charge-d", "pm_card_chargeDeclined", 4_000))
        .await
        .unwrap();
    assert!(
        matches!(declined, ChargeOutcome::Declined { .. }),
        "{declined:?}"
    );
}
