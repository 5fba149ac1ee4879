//! What PayPal's answers mean for us: pure mappings from error bodies, capture and refund
//! statuses and verification answers to [`ChargeOutcome`]s, [`RefundOutcome`]s and
//! [`GatewayError`]s.

use ledger::money::Money;
use serde::Deserialize;

use super::amount::PaypalAmount;
use super::wire::{Capture, Order, Refund};
use crate::gateway::{ChargeOutcome, FailureCode, GatewayError, RefundOutcome};

/// PayPal's error body: `{name, message, debug_id, details: [{issue, description}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// `UNPROCESSABLE_ENTITY`, `INVALID_REQUEST`, `RESOURCE_NOT_FOUND`, …
    #[serde(default)]
    pub name: String,
    /// PayPal's message for people.
    #[serde(default)]
    pub message: String,
    /// PayPal's id for this failure (for their support).
    #[serde(default)]
    pub debug_id: String,
    /// What exactly went wrong.
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
}

/// One of an error's details.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    /// `INSTRUMENT_DECLINED`, `REFUND_AMOUNT_EXCEEDED`, …
    #[serde(default)]
    pub issue: String,
    /// PayPal's description of the issue.
    #[serde(default)]
    pub description: String,
}

impl ErrorBody {
    /// The first detail's issue, if any.
    pub fn issue(&self) -> Option<&str> {
        self.details
            .first()
            .map(|d| d.issue.as_str())
            .filter(|i| !i.is_empty())
    }

    /// The most specific text: the first detail's description, else the message.
    pub fn text(&self) -> &str {
        self.details
            .first()
            .map(|d| d.description.as_str())
            .filter(|d| !d.is_empty())
            .unwrap_or(&self.message)
    }
}

/// Issues of a 422 that are declines of the payer's payment source: final for this payment
/// source, unlike a 422 about our request (`DECIMAL_PRECISION`, `ORDER_ALREADY_CAPTURED`, …).
pub const DECLINE_ISSUES: [&str; 13] = [
    "INSTRUMENT_DECLINED",
    "TRANSACTION_REFUSED",
    "PAYER_ACTION_REQUIRED",
    "PAYER_CANNOT_PAY",
    "PAYER_ACCOUNT_RESTRICTED",
    "PAYER_ACCOUNT_LOCKED_OR_CLOSED",
    "PAYEE_BLOCKED_TRANSACTION",
    "TRANSACTION_BLOCKED_BY_PAYEE",
    "TRANSACTION_LIMIT_EXCEEDED",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
    "COMPLIANCE_VIOLATION",
    "CARD_EXPIRED",
];

/// Whether `issue` declines the payment (see [`DECLINE_ISSUES`]).
pub fn is_decline(issue: &str) -> bool {
    DECLINE_ISSUES.contains(&issue)
}

/// Our failure code for a declining issue.
pub fn failure_code(issue: &str) -> FailureCode {
    match issue {
        "INSTRUMENT_DECLINED" | "TRANSACTION_REFUSED" => FailureCode::CardDeclined,
        "PAYER_ACTION_REQUIRED" => FailureCode::Other("authentication_required".into()),
        "CARD_EXPIRED" => FailureCode::ExpiredCard,
        other => FailureCode::from_code(&other.to_ascii_lowercase()),
    }
}

/// An error answer to a charge's order or capture: a 422 with a declining issue is an outcome
/// (`order_id` is the declined order, empty before one exists); anything else as in
/// [`error_only`].
pub fn from_error(
    status: u16,
    e: &ErrorBody,
    order_id: &str,
) -> Result<ChargeOutcome, GatewayError> {
    match e.issue() {
        Some(issue) if status == 422 && is_decline(issue) => Ok(ChargeOutcome::Declined {
            gateway_charge_id: order_id.to_string(),
            failure_code: failure_code(issue),
            message: e.text().to_string(),
        }),
        // The money was taken by an earlier capture whose answer we lost (and whose request id
        // PayPal no longer remembers): not a failure — left pending for the webhook to settle.
        Some("ORDER_ALREADY_CAPTURED") => Err(GatewayError::Unavailable(format!(
            "paypal: order {order_id} was captured already"
        ))),
        _ => Err(error_only(status, e)),
    }
}

/// An error answer as a [`GatewayError`]: 5xx, 429 (rate limit) and 409 (the same request id in
/// flight) are worth retrying with the same key; any other 4xx is final.
pub fn error_only(status: u16, e: &ErrorBody) -> GatewayError {
    let mut what = format!("paypal {status}");
    for part in [e.name.as_str(), e.issue().unwrap_or_default()] {
        if !part.is_empty() {
            what = format!("{what} {part}");
        }
    }
    if !e.text().is_empty() {
        what = format!("{what}: {}", e.text());
    }
    if !e.debug_id.is_empty() {
        what = format!("{what} (debug_id {})", e.debug_id);
    }
    if matches!(status, 409 | 429) || status >= 500 {
        GatewayError::Unavailable(what)
    } else if matches!(status, 401 | 403) {
        GatewayError::Unauthorized(what)
    } else {
        GatewayError::InvalidRequest(what)
    }
}

/// A capture's status as an outcome. `COMPLETED` took the money (so did a capture refunded
/// since); `DECLINED` and `FAILED` did not; `PENDING` is accepted, not final: the charge waits
/// for `PAYMENT.CAPTURE.COMPLETED` or `.DENIED`.
pub fn from_capture(
    id: &str,
    status: &str,
    reason: Option<&str>,
) -> Result<ChargeOutcome, GatewayError> {
    match status {
        "COMPLETED" | "PARTIALLY_REFUNDED" | "REFUNDED" => Ok(ChargeOutcome::Succeeded {
            gateway_charge_id: id.to_string(),
        }),
        "DECLINED" | "FAILED" => Ok(ChargeOutcome::Declined {
            gateway_charge_id: id.to_string(),
            failure_code: FailureCode::CardDeclined,
            message: match reason {
                Some(r) => format!("PayPal did not capture the payment ({status}: {r})."),
                None => format!("PayPal did not capture the payment ({status})."),
            },
        }),
        "PENDING" => Ok(ChargeOutcome::Accepted {
            gateway_charge_id: id.to_string(),
        }),
        other => Err(GatewayError::Unavailable(format!(
            "paypal capture {id} is {other}{}; its outcome will arrive later",
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ))),
    }
}

/// Whether PayPal's `got` (when it shows one) is `sent`. PayPal answers a repeated
/// `PayPal-Request-Id` with the first request's result, whatever the new request says: an
/// answer for another amount means our key was reused with other parameters.
pub(crate) fn same_amount(got: Option<&PaypalAmount>, sent: Money) -> Result<(), GatewayError> {
    match got {
        Some(a) if a.to_money() != Some(sent) => Err(GatewayError::InvalidRequest(format!(
            "paypal: the idempotency key was used for {} {}, not {sent}",
            a.value, a.currency_code
        ))),
        _ => Ok(()),
    }
}

/// Checks an order PayPal gave for our key: its amount and `custom_id` must be ours.
pub(crate) fn check_order(order: &Order, sent: Money, key: &str) -> Result<(), GatewayError> {
    let unit = order.unit();
    same_amount(unit.and_then(|u| u.amount.as_ref()), sent)?;
    match unit.and_then(|u| u.custom_id.as_deref()) {
        Some(custom) if custom != key => Err(GatewayError::InvalidRequest(format!(
            "paypal: order {} belongs to {custom:?}, not {key:?}",
            order.id
        ))),
        _ => Ok(()),
    }
}

/// An order PayPal will not capture without the payer (`PAYER_ACTION_REQUIRED`: the vaulted
/// source needs their consent again) is declined as `authentication_required`, as Stripe reports
/// a PaymentIntent that `requires_action`.
pub(crate) fn awaiting_payer(order: &Order) -> Option<ChargeOutcome> {
    (order.status == "PAYER_ACTION_REQUIRED").then(|| ChargeOutcome::Declined {
        gateway_charge_id: order.id.clone(),
        failure_code: failure_code("PAYER_ACTION_REQUIRED"),
        message: "The payer must approve this payment at PayPal.".into(),
    })
}

/// The outcome a capture gives, once its amount is checked.
pub(crate) fn settled(capture: &Capture, sent: Money) -> Result<ChargeOutcome, GatewayError> {
    same_amount(capture.amount.as_ref(), sent)?;
    let reason = capture
        .status_details
        .as_ref()
        .and_then(|d| d.reason.as_deref());
    from_capture(&capture.id, &capture.status, reason)
}

/// A refund's status: `COMPLETED` and `PENDING` are made (PayPal completes a pending one);
/// `FAILED` and `CANCELLED` are final refusals.
pub(crate) fn refunded(refund: &Refund, sent: Money) -> Result<RefundOutcome, GatewayError> {
    same_amount(refund.amount.as_ref(), sent)?;
    match refund.status.as_str() {
        "FAILED" | "CANCELLED" => Err(GatewayError::InvalidRequest(format!(
            "paypal refund {} {}",
            refund.id, refund.status
        ))),
        _ => Ok(RefundOutcome {
            gateway_refund_id: refund.id.clone(),
        }),
    }
}

/// A webhook verification's `verification_status`: `SUCCESS` or `FAILURE`; anything else is an
/// answer we cannot read.
pub fn verification(status: &str) -> Result<bool, GatewayError> {
    match status {
        "SUCCESS" => Ok(true),
        "FAILURE" => Ok(false),
        other => Err(GatewayError::Unavailable(format!(
            "paypal verification status {other:?}"
        ))),
    }
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
