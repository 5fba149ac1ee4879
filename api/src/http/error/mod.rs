//! The one place where errors become HTTP.
//!
//! Status policy (API.md): 400 malformed input, 401 no or bad key, 402 card declined, 403 scope,
//! 404 unknown, 409 conflict or same idempotency key in flight, 413 body too large, 422 idempotency
//! key reused with another body, 429 rate limit, 5xx our failure. The body is always
//! `{"error": {"type", "code", "message", "param"}}`; database text never reaches it (it is logged).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger::store::StoreError;
use serde::Serialize;
use serde_json::json;

mod domain;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
    pub(super) fn new(
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
            // Any other decline (`lost_card`, `fraud_blocked`, `review_rejected`, …) says why.
            other => ("card_declined", Some(other)),
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

    /// `STRIPE_WEBHOOK_SECRET` is not set: deliveries cannot be authenticated (Stripe retries).
    pub fn webhooks_not_configured() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            "webhooks_not_configured",
            "no webhook secret is configured (STRIPE_WEBHOOK_SECRET); nothing was recorded",
        )
    }

    /// A gateway needed to accept a request did not answer (PayPal verifying a delivery).
    pub fn gateway_unavailable(message: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            "gateway_unavailable",
            message,
        )
    }

    /// PayPal deliveries cannot be verified: no `PAYPAL_WEBHOOK_ID` or no PayPal credentials.
    pub fn paypal_webhooks_not_configured() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            "webhooks_not_configured",
            "PayPal webhooks are not configured (PAYPAL_WEBHOOK_ID and PayPal credentials); nothing was recorded",
        )
    }

    /// The read models have not reached the position a reader asked for (`min_position`).
    pub fn read_model_behind(wanted: i64, reached: i64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ApiError,
            "read_model_behind",
            format!(
                "the read models have applied the log up to position {reached}, not yet \
                 {wanted}; retry shortly"
            ),
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
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
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
