//! Unit tests of [`super`]: PayPal's answers and what they mean for us.

use ledger::money::{Currency, Money};
use serde_json::json;

use super::*;
use crate::paypal::wire::StatusDetails;

fn body(name: &str, issue: Option<&str>) -> ErrorBody {
    ErrorBody {
        name: name.into(),
        message: "The requested action could not be performed.".into(),
        debug_id: "d1".into(),
        details: issue
            .map(|i| ErrorDetail {
                issue: i.into(),
                description: format!("{i} described"),
            })
            .into_iter()
            .collect(),
    }
}

fn usd(value: &str) -> Option<PaypalAmount> {
    Some(PaypalAmount {
        currency_code: "USD".into(),
        value: value.into(),
    })
}

#[test]
fn error_bodies_parse_from_paypal_json() {
    let e: ErrorBody = serde_json::from_value(json!({
        "name": "UNPROCESSABLE_ENTITY", "message": "m", "debug_id": "abc",
        "details": [{ "issue": "INSTRUMENT_DECLINED", "description": "d" }],
        "links": [{ "href": "https://developer.paypal.com", "rel": "information_link" }],
    }))
    .unwrap();
    assert_eq!((e.issue(), e.text()), (Some("INSTRUMENT_DECLINED"), "d"));
    let bare: ErrorBody = serde_json::from_value(json!({ "name": "X", "message": "m" })).unwrap();
    assert_eq!((bare.issue(), bare.text()), (None, "m"));
}

#[test]
fn declining_issues_are_declines_with_our_failure_codes() {
    let cases = [
        ("INSTRUMENT_DECLINED", FailureCode::CardDeclined),
        ("TRANSACTION_REFUSED", FailureCode::CardDeclined),
        (
            "PAYER_ACTION_REQUIRED",
            FailureCode::Other("authentication_required".into()),
        ),
        (
            "PAYER_CANNOT_PAY",
            FailureCode::Other("payer_cannot_pay".into()),
        ),
        ("CARD_EXPIRED", FailureCode::ExpiredCard),
        (
            "TRANSACTION_LIMIT_EXCEEDED",
            FailureCode::Other("transaction_limit_exceeded".into()),
        ),
    ];
    for (issue, want) in cases {
        match from_error(422, &body("UNPROCESSABLE_ENTITY", Some(issue)), "O1") {
            Ok(ChargeOutcome::Declined {
                gateway_charge_id,
                failure_code,
                message,
            }) => {
                assert_eq!(failure_code, want, "{issue}");
                assert_eq!(gateway_charge_id, "O1");
                assert_eq!(message, format!("{issue} described"));
            }
            other => panic!("{issue}: {other:?}"),
        }
    }
    for issue in DECLINE_ISSUES {
        assert!(from_error(422, &body("UNPROCESSABLE_ENTITY", Some(issue)), "").is_ok());
    }
}

#[test]
fn other_errors_are_final_unless_paypal_or_the_network_failed() {
    // A 422 about our request is not a decline, and a declining issue outside a 422 neither.
    for (status, issue) in [
        (422, Some("DECIMAL_PRECISION")),
        (422, None),
        (400, Some("INVALID_PARAMETER_VALUE")),
        (400, Some("INSTRUMENT_DECLINED")),
        (404, Some("INVALID_RESOURCE_ID")),
    ] {
        let e = from_error(status, &body("X", issue), "O1").unwrap_err();
        assert!(
            matches!(e, GatewayError::InvalidRequest(_)),
            "{status} {issue:?}: {e:?}"
        );
    }
    for status in [500, 502, 503, 504, 429, 409] {
        let e = from_error(status, &ErrorBody::default(), "").unwrap_err();
        assert!(matches!(e, GatewayError::Unavailable(_)), "{status}: {e:?}");
    }
    let e = error_only(
        422,
        &body("UNPROCESSABLE_ENTITY", Some("REFUND_AMOUNT_EXCEEDED")),
    );
    assert_eq!(
        e.to_string(),
        "invalid gateway request: paypal 422 UNPROCESSABLE_ENTITY REFUND_AMOUNT_EXCEEDED: \
         REFUND_AMOUNT_EXCEEDED described (debug_id d1)"
    );
}

#[test]
fn capture_statuses_map_to_outcomes_and_pending_is_not_final() {
    assert!(
        from_capture("C1", "COMPLETED", None)
            .unwrap()
            .is_succeeded()
    );
    assert!(
        from_capture("C1", "PARTIALLY_REFUNDED", None)
            .unwrap()
            .is_succeeded()
    );
    for status in ["DECLINED", "FAILED"] {
        match from_capture("C1", status, None).unwrap() {
            ChargeOutcome::Declined {
                gateway_charge_id,
                failure_code,
                ..
            } => assert_eq!(
                (gateway_charge_id.as_str(), failure_code),
                ("C1", FailureCode::CardDeclined)
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        from_capture("C1", "PENDING", Some("PENDING_REVIEW")),
        Ok(ChargeOutcome::Accepted {
            gateway_charge_id: "C1".into()
        })
    );
    assert!(
        from_capture("C1", "SOMETHING_NEW", None)
            .unwrap_err()
            .is_retryable()
    );
}

#[test]
fn an_answer_for_other_parameters_is_refused() {
    let sent = Money::new(1999, Currency::USD);
    assert!(same_amount(usd("19.99").as_ref(), sent).is_ok());
    assert!(same_amount(usd("19.990").as_ref(), sent).is_err());
    assert!(same_amount(None, sent).is_ok());
    assert!(same_amount(usd("20.00").as_ref(), sent).is_err());
    let mut order: Order = serde_json::from_value(json!({ "id": "O1", "status": "APPROVED",
        "purchase_units": [{ "amount": { "currency_code": "USD", "value": "19.99" },
            "custom_id": "charge-1" }] }))
    .unwrap();
    assert!(check_order(&order, sent, "charge-1").is_ok());
    assert!(check_order(&order, sent, "charge-2").is_err());
    assert!(check_order(&order, Money::new(1999, Currency::EUR), "charge-1").is_err());
    assert_eq!(awaiting_payer(&order), None);
    order.status = "PAYER_ACTION_REQUIRED".into();
    match awaiting_payer(&order) {
        Some(ChargeOutcome::Declined {
            gateway_charge_id,
            failure_code,
            ..
        }) => {
            assert_eq!(gateway_charge_id, "O1");
            assert_eq!(failure_code.as_str(), "authentication_required");
        }
        other => panic!("{other:?}"),
    }
    order.purchase_units.clear();
    assert!(check_order(&order, sent, "charge-2").is_ok());
    let capture = Capture {
        id: "C1".into(),
        status: "PENDING".into(),
        amount: usd("19.99"),
        status_details: Some(StatusDetails {
            reason: Some("ECHECK".into()),
        }),
    };
    assert_eq!(
        settled(&capture, sent),
        Ok(ChargeOutcome::Accepted {
            gateway_charge_id: "C1".into()
        })
    );
    assert!(matches!(
        settled(&capture, Money::new(5, Currency::USD)),
        Err(GatewayError::InvalidRequest(_))
    ));
}

#[test]
fn refunds_are_made_unless_failed_or_cancelled() {
    let sent = Money::new(1000, Currency::USD);
    let refund = |status: &str| Refund {
        id: "R1".into(),
        status: status.into(),
        amount: usd("10.00"),
    };
    for status in ["COMPLETED", "PENDING"] {
        assert_eq!(
            refunded(&refund(status), sent).unwrap().gateway_refund_id,
            "R1"
        );
    }
    for status in ["FAILED", "CANCELLED"] {
        assert!(matches!(
            refunded(&refund(status), sent),
            Err(GatewayError::InvalidRequest(_))
        ));
    }
    assert!(refunded(&refund("COMPLETED"), Money::new(999, Currency::USD)).is_err());
}

#[test]
fn verification_statuses_are_read_strictly() {
    assert_eq!(verification("SUCCESS"), Ok(true));
    assert_eq!(verification("FAILURE"), Ok(false));
    assert!(verification("success").unwrap_err().is_retryable());
}

#[test]
fn refused_credentials_and_an_order_captured_already_leave_the_charge_pending() {
    for (status, issue) in [(401, None), (403, Some("PERMISSION_DENIED"))] {
        let e = from_error(status, &body("X", issue), "O1").unwrap_err();
        assert!(
            matches!(e, GatewayError::Unauthorized(_)),
            "{status}: {e:?}"
        );
        assert!(e.is_retryable());
    }
    let e = from_error(422, &body("X", Some("ORDER_ALREADY_CAPTURED")), "O1").unwrap_err();
    assert!(
        matches!(e, GatewayError::Unavailable(_)) && e.is_retryable(),
        "{e:?}"
    );
}
