//! The one place where errors become HTTP.
//!
//! Status policy (API.md): 400 malformed input, 401 no or bad key, 402 card declined, 403 scope,
//! 404 unknown, 409 conflict or same idempotency key in flight, 413 body too large, 422 idempotency
//! key reused with another body, 429 rate limit, 5xx our failure. The body is always
//! `{"error": {"type", "code", "message", "param"}}`; database text never reaches it (it is logged).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use commands::CommandError;
use commands::charge::ChargeError;
use commands::charge::refund::RefundError;
use commands::plan::PlanError;
use commands::tax_rate::TaxRateError;
use ledger::store::StoreError;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    NotFound,
    Conflict,
    IdempotencyError,
    CardError,
    RateLimitError,
    ApiError,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: ErrorType,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    /// Extra fields of the error object (`decline_code`, `charge`).
    pub extra: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: ErrorType,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            extra: Vec::new(),
        }
    }

    pub fn invalid(
        code: &'static str,
        param: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            param,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestError,
                code,
                message,
            )
        }
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::InvalidRequestError,
            "body_too_large",
            format!("request body larger than {limit} bytes"),
        )
    }

    pub fn unauthenticated(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::AuthenticationError,
            "api_key_invalid",
            message,
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorType::PermissionError,
            "insufficient_scope",
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::NotFound,
            "resource_missing",
            message,
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::InvalidRequestError,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    pub fn idempotency_in_flight() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            ErrorType::Conflict,
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being processed; retry later",
        )
    }

    pub fn idempotency_mismatch() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::IdempotencyError,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request (method, path or body)",
        )
    }

    pub fn card_declined(code: &str, message: &str, charge_id: String) -> Self {
        // Stripe's shape: issuer declines are `card_declined` with the reason in `decline_code`.
        let (public_code, decline_code) = match code {
            "expired_card" => ("expired_card", None),
            "incorrect_cvc" => ("incorrect_cvc", None),
            "processing_error" => ("processing_error", None),
            "invalid_payment_method" => ("invalid_payment_method", None),
            "card_declined" => ("card_declined", Some("generic_decline")),
            "insufficient_funds" => ("card_declined", Some("insufficient_funds")),
            "fraudulent" => ("card_declined", Some("fraudulent")),
            _ => ("card_declined", None),
        };
        let mut e = Self::new(
            StatusCode::PAYMENT_REQUIRED,
            ErrorType::CardError,
            public_code,
            message,
        );
        if let Some(d) = decline_code {
            e.extra.push(("decline_code", d.to_string()));
        }
        e.extra.push(("charge", charge_id));
        e
    }

    pub fn internal(context: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::ApiError,
            "internal_error",
            "an internal error occurred; the request may be retried",
        )
    }

    pub fn unavailable(context: &str, detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "{context}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            "service_unavailable",
            "the ledger is temporarily unavailable; retry later",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({
            "type": self.kind,
            "code": self.code,
            "message": self.message,
            "param": self.param,
        });
        if let Some(obj) = error.as_object_mut() {
            for (k, v) in &self.extra {
                obj.insert((*k).to_string(), json!(v));
            }
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) | StoreError::Closed => {
                ApiError::unavailable("event store unavailable", &e)
            }
            StoreError::Rejected(_) | StoreError::Corrupt(_) => {
                ApiError::internal("event store error", &e)
            }
        }
    }
}

impl From<ChargeError> for ApiError {
    fn from(e: ChargeError) -> Self {
        let msg = e.to_string();
        match e {
            ChargeError::AmountNotPositive | ChargeError::AmountTooLarge => {
                ApiError::invalid("amount_invalid", Some("amount"), msg)
            }
            ChargeError::InvalidPaymentMethod => {
                ApiError::invalid("payment_method_invalid", Some("payment_method"), msg)
            }
            ChargeError::DescriptionTooLong => {
                ApiError::invalid("parameter_invalid", Some("description"), msg)
            }
            ChargeError::NotRequested => ApiError::not_found(msg),
            ChargeError::AlreadyRequested(_) | ChargeError::OutcomeRecorded(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "charge_exists",
                msg,
            ),
        }
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        let msg = e.to_string();
        match e {
            PlanError::NameInvalid => ApiError::invalid("parameter_invalid", Some("name"), msg),
            PlanError::AmountInvalid => ApiError::invalid("amount_invalid", Some("amount"), msg),
            PlanError::PricesInvalid => ApiError::invalid("parameter_invalid", Some("prices"), msg),
            PlanError::TrialTooLong => {
                ApiError::invalid("parameter_invalid", Some("trial_days"), msg)
            }
            PlanError::NotFound => ApiError::not_found(msg),
            PlanError::AlreadyExists(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "resource_exists",
                msg,
            ),
        }
    }
}

impl From<TaxRateError> for ApiError {
    fn from(e: TaxRateError) -> Self {
        let msg = e.to_string();
        match e {
            TaxRateError::DisplayNameInvalid => {
                ApiError::invalid("parameter_invalid", Some("display_name"), msg)
            }
            TaxRateError::CountryInvalid => {
                ApiError::invalid("parameter_invalid", Some("country"), msg)
            }
            TaxRateError::StateInvalid => {
                ApiError::invalid("parameter_invalid", Some("state"), msg)
            }
            TaxRateError::AlreadyExists(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "resource_exists",
                msg,
            ),
        }
    }
}

impl From<RefundError> for ApiError {
    fn from(e: RefundError) -> Self {
        let msg = e.to_string();
        match e {
            RefundError::ChargeNotRefundable => {
                ApiError::invalid("charge_not_refundable", Some("charge_id"), msg)
            }
            RefundError::AlreadyRefunded(_) => {
                ApiError::invalid("charge_already_refunded", Some("charge_id"), msg)
            }
            RefundError::AmountNotPositive => {
                ApiError::invalid("amount_invalid", Some("amount"), msg)
            }
            RefundError::AmountTooLarge { .. } => {
                ApiError::invalid("amount_too_large", Some("amount"), msg)
            }
            RefundError::ReasonInvalid => {
                ApiError::invalid("parameter_invalid", Some("reason"), msg)
            }
            RefundError::NotFound => ApiError::not_found(msg),
            RefundError::AlreadyRequested(_) | RefundError::OutcomeRecorded(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "resource_exists",
                msg,
            ),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Charge(c) => c.into(),
            CommandError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "concurrent_modification",
                "the resource was changed by another request; retry",
            ),
            CommandError::IdempotencyMismatch => ApiError::idempotency_mismatch(),
            CommandError::IdempotencyKeyTaken => ApiError::idempotency_in_flight(),
            CommandError::Plan(p) => p.into(),
            CommandError::Refund(r) => r.into(),
            CommandError::TaxRate(t) => t.into(),
            CommandError::Store(s) => s.into(),
        }
    }
}
