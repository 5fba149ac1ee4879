//! `POST /v1/test_clocks` and `POST /v1/test_clocks/{id}/advance` (Stripe's test clocks).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use commands::charge::Rendered;
use commands::test_clock::{TestClock, TestClockCommand};
use ledger::ids::TestClockId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::{body_bytes, parse_json};
use super::command::{self, Outcome};
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTestClock {
    /// RFC 3339: the clock's starting time.
    pub frozen_time: DateTime<Utc>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdvanceTestClock {
    /// RFC 3339: later than the clock's time, by at most two years.
    pub frozen_time: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestClockObject {
    /// `clock_…`
    pub id: String,
    /// Always `test_clock`.
    pub object: &'static str,
    pub frozen_time: String,
    pub name: Option<String>,
    /// Always `ready`: an advance answers after everything due has run.
    pub status: &'static str,
    pub subscriptions: usize,
    pub created: String,
    pub livemode: bool,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn render(c: &TestClock) -> Rendered {
    let object = TestClockObject {
        id: c.id.to_string(),
        object: "test_clock",
        frozen_time: rfc3339(c.frozen_time),
        name: c.name.clone(),
        status: "ready",
        subscriptions: c.subscriptions.len(),
        created: rfc3339(c.created),
        livemode: false,
    };
    Rendered {
        status: 200,
        body: serde_json::to_string(&object).unwrap_or_default(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/test_clocks",
    request_body = CreateTestClock,
    responses((status = 200, description = "the new test clock", body = TestClockObject)),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    command::run(
        &state,
        &caller,
        &headers,
        "/v1/test_clocks",
        &body,
        |ctx| async move {
            let req: CreateTestClock = parse_json(&ctx.body)?;
            let id = match &ctx.draft {
                Some(d) => TestClockId::derived(&format!("{}:{}", d.api_key_id, d.key)),
                None => TestClockId::new(),
            };
            let command = TestClockCommand::Create {
                test_clock_id: id,
                frozen_time: req.frozen_time,
                name: req.name,
            };
            let done = ctx
                .state
                .executor
                .execute::<TestClock>(&id, command, &ctx.metadata, ctx.draft.as_ref(), &render)
                .await?;
            let rendered = render(&done.state);
            Ok(Outcome::from((done, rendered)))
        },
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/test_clocks/{id}/advance",
    request_body = AdvanceTestClock,
    params(("id" = String, Path, description = "`clock_…`")),
    responses(
        (status = 200, description = "the clock at its new time, after every renewal, trial end and payment retry due up to it ran, in time order", body = TestClockObject),
        (status = 400, description = "the time does not move forward, or too far"),
        (status = 404, description = "no such test clock"),
    ),
    security(("bearer" = []))
)]
pub async fn advance(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(body)?;
    let id: TestClockId = id
        .parse()
        .map_err(|_| ApiError::not_found("no such test clock"))?;
    let path = format!("/v1/test_clocks/{id}/advance");
    command::run(&state, &caller, &headers, &path, &body, |ctx| async move {
        let req: AdvanceTestClock = parse_json(&ctx.body)?;
        let done = ctx
            .state
            .billing
            .advance_clock(
                id,
                req.frozen_time,
                &ctx.metadata,
                ctx.draft.as_ref(),
                &render,
            )
            .await?;
        let position = ctx
            .state
            .store
            .head()
            .await
            .map_err(commands::CommandError::from)?
            .position;
        let rendered = render(&done.state);
        Ok(Outcome {
            rendered,
            position: position.max(done.position),
            idempotency_stored: done.idempotency_stored,
        })
    })
    .await
}
