//! Response helpers shared by command handlers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ledger::event::Position;

/// Position of the command's last event, for read-your-writes (`?min_position=`).
pub const BILLING_POSITION: &str = "billing-position";

pub fn with_position(mut response: Response, position: Position) -> Response {
    if let Ok(v) = HeaderValue::from_str(&position.to_string()) {
        response.headers_mut().insert(BILLING_POSITION, v);
    }
    response
}

/// A JSON body already rendered to text (so a replay is byte-identical to the first answer).
pub fn json_text(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
