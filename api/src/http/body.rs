//! Request bodies: a size limit and strict JSON, with errors in the API's shape.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body accepted, in bytes.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

/// Maps the body extractor's rejection (too large, broken stream) to the API's error.
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(BODY_MAX_BYTES)
        } else {
            ApiError::invalid(
                "body_unreadable",
                None,
                "the request body could not be read",
            )
        }
    })
}

/// Parses JSON into `T` (whose fields say what is required and what is unknown).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "body_missing",
            None,
            "a JSON request body is required",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "json_invalid"
            }
            _ => "parameter_invalid",
        };
        ApiError::invalid(code, None, format!("invalid request body: {e}"))
    })
}
