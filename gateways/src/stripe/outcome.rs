//! What Stripe's answers mean for us: pure mappings from a PaymentIntent's status and from
//! Stripe's errors to [`ChargeOutcome`]s and [`GatewayError`]s.

use crate::gateway::{ChargeOutcome, FailureCode, GatewayError};

/// The parts of a Stripe error we decide on (`StripeError::Stripe(ApiErrors, status)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorParts {
    /// HTTP status.
    pub status: u16,
    /// `card_error`, `invalid_request_error`, `idempotency_error`, `api_error`.
    pub type_: String,
    /// `card_declined`, `expired_card`, `resource_missing`, …
    pub code: Option<String>,
    /// For `card_declined`: `insufficient_funds`, `generic_decline`, `fraudulent`, …
    pub decline_code: Option<String>,
    /// Stripe's message for people.
    pub message: Option<String>,
    /// The PaymentIntent the error is about (declines carry it).
    pub payment_intent: Option<String>,
}

/// A Stripe error answer: a decline is an outcome (final for this idempotency key); a 5xx, a 409
/// (the same key in flight) or a 429 is worth retrying with the same key; any other 4xx is final.
pub fn from_error(e: &ErrorParts) -> Result<ChargeOutcome, GatewayError> {
    if e.status == 402 || e.type_ == "card_error" {
        return Ok(ChargeOutcome::Declined {
            gateway_charge_id: e.payment_intent.clone().unwrap_or_default(),
            failure_code: failure_code(e.code.as_deref(), e.decline_code.as_deref()),
            message: e
                .message
                .clone()
                .unwrap_or_else(|| "Your card was declined.".into()),
        });
    }
    Err(error_only(e))
}

/// A Stripe error as a [`GatewayError`] (refunds and retrievals, where nothing is a decline).
pub fn error_only(e: &ErrorParts) -> GatewayError {
    let what = match (&e.code, &e.message) {
        (Some(code), Some(m)) => format!("stripe {} {code}: {m}", e.status),
        (None, Some(m)) => format!("stripe {}: {m}", e.status),
        (Some(code), None) => format!("stripe {} {code}", e.status),
        (None, None) => format!("stripe {} {}", e.status, e.type_),
    };
    if matches!(e.status, 409 | 429) || e.status >= 500 {
        GatewayError::Unavailable(what)
    } else if matches!(e.status, 401 | 403) {
        GatewayError::Unauthorized(what)
    } else {
        GatewayError::InvalidRequest(what)
    }
}

/// Our failure code for Stripe's `code` / `decline_code` pair: the decline code when it says
/// more than "declined", else the error code.
pub fn failure_code(code: Option<&str>, decline_code: Option<&str>) -> FailureCode {
    match (code, decline_code) {
        (_, Some("generic_decline")) | (None, None) => FailureCode::CardDeclined,
        (_, Some(decline)) => FailureCode::from_code(decline),
        (Some(code), None) => FailureCode::from_code(code),
    }
}

/// A PaymentIntent's status after `confirm=true`, as an outcome.
///
/// `succeeded` took the money. `requires_action` needs the customer (3-D Secure): a decline with
/// `authentication_required`, as Stripe itself reports off-session. `requires_payment_method`
/// failed (its `last_payment_error` says why). `processing` (bank debits) is accepted, not
/// final: the charge waits for `payment_intent.succeeded` or `.payment_failed`.
/// `requires_capture` (an authorization, `capture_method=manual`) is authorized.
pub fn from_status(
    id: &str,
    status: &str,
    last_error: Option<(&ErrorParts, &str)>,
) -> Result<ChargeOutcome, GatewayError> {
    let declined = |code: FailureCode, message: &str| ChargeOutcome::Declined {
        gateway_charge_id: id.to_string(),
        failure_code: code,
        message: message.to_string(),
    };
    match status {
        "succeeded" => Ok(ChargeOutcome::Succeeded {
            gateway_charge_id: id.to_string(),
        }),
        "requires_action" => Ok(declined(
            FailureCode::Other("authentication_required".into()),
            "The payment requires the customer's authentication.",
        )),
        "requires_payment_method" | "canceled" => Ok(match last_error {
            Some((e, message)) => declined(
                failure_code(e.code.as_deref(), e.decline_code.as_deref()),
                message,
            ),
            None => declined(FailureCode::CardDeclined, "The payment was not completed."),
        }),
        "processing" => Ok(ChargeOutcome::Accepted {
            gateway_charge_id: id.to_string(),
        }),
        // Authorized (`capture_method=manual`); the risk level comes with its charge.
        "requires_capture" => Ok(ChargeOutcome::Authorized {
            gateway_charge_id: id.to_string(),
            risk_level: None,
        }),
        other => Err(GatewayError::Unavailable(format!(
            "payment intent {id} is {other}; its outcome will arrive later"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, type_: &str, code: Option<&str>, decline: Option<&str>) -> ErrorParts {
        ErrorParts {
            status,
            type_: type_.into(),
            code: code.map(Into::into),
            decline_code: decline.map(Into::into),
            message: Some("m".into()),
            payment_intent: Some("pi_1".into()),
        }
    }

    #[test]
    fn card_errors_are_declines_with_the_most_specific_code() {
        let cases = [
            (
                Some("card_declined"),
                Some("generic_decline"),
                "card_declined",
            ),
            (
                Some("card_declined"),
                Some("insufficient_funds"),
                "insufficient_funds",
            ),
            (Some("card_declined"), Some("fraudulent"), "fraudulent"),
            (Some("card_declined"), Some("lost_card"), "lost_card"),
            (Some("expired_card"), None, "expired_card"),
            (Some("incorrect_cvc"), None, "incorrect_cvc"),
            (Some("processing_error"), None, "processing_error"),
            (None, None, "card_declined"),
        ];
        for (code, decline, want) in cases {
            match from_error(&err(402, "card_error", code, decline)) {
                Ok(ChargeOutcome::Declined {
                    failure_code,
                    gateway_charge_id,
                    ..
                }) => {
                    assert_eq!(failure_code.as_str(), want, "{code:?}/{decline:?}");
                    assert_eq!(gateway_charge_id, "pi_1");
                }
                other => panic!("{code:?}/{decline:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn server_errors_conflicts_and_rate_limits_are_retryable_other_4xx_are_not() {
        for status in [500, 502, 503, 409, 429] {
            let e = from_error(&err(status, "api_error", None, None)).unwrap_err();
            assert!(e.is_retryable(), "{status}");
        }
        for status in [401, 403] {
            let e = from_error(&err(status, "invalid_request_error", Some("x"), None)).unwrap_err();
            assert!(
                matches!(e, GatewayError::Unauthorized(_)) && e.is_retryable(),
                "{status}"
            );
        }
        for status in [400, 404] {
            let e = from_error(&err(status, "invalid_request_error", Some("x"), None)).unwrap_err();
            assert!(!e.is_retryable(), "{status}");
        }
    }

    #[test]
    fn statuses_map_to_outcomes_and_processing_is_not_final() {
        assert!(
            from_status("pi_1", "succeeded", None)
                .unwrap()
                .is_succeeded()
        );
        match from_status("pi_1", "requires_action", None).unwrap() {
            ChargeOutcome::Declined { failure_code, .. } => {
                assert_eq!(failure_code.as_str(), "authentication_required")
            }
            other => panic!("{other:?}"),
        }
        let last = err(
            402,
            "card_error",
            Some("card_declined"),
            Some("insufficient_funds"),
        );
        match from_status("pi_1", "requires_payment_method", Some((&last, "no funds"))).unwrap() {
            ChargeOutcome::Declined {
                failure_code,
                message,
                ..
            } => {
                assert_eq!(failure_code, FailureCode::InsufficientFunds);
                assert_eq!(message, "no funds");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            from_status("pi_1", "processing", None),
            Ok(ChargeOutcome::Accepted {
                gateway_charge_id: "pi_1".into()
            })
        );
        assert_eq!(
            from_status("pi_1", "requires_capture", None),
            Ok(ChargeOutcome::Authorized {
                gateway_charge_id: "pi_1".into(),
                risk_level: None
            })
        );
        assert!(from_status("pi_1", "requires_confirmation", None).is_err());
    }
}
