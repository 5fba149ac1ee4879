//! Running a command under the API's rules, the same way for every write endpoint:
//! `write` scope; `Idempotency-Key` claimed (replay, 422, 409); the command in a task of its own,
//! so a client that disconnects cannot cut it between its steps; and when another request under
//! the same key stored its response first, that response.

use std::future::Future;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use commands::CommandError;
use commands::charge::{IdempotencyDraft, Rendered};
use ledger::access::Scope;
use ledger::event::{Metadata, Position};

use super::auth::Caller;
use super::error::ApiError;
use super::idempotency::{self, Begin};
use super::respond::{json_text, with_position};
use crate::state::AppState;

/// What a command produced: the response to give, the position of its last event, and whether
/// the idempotency record was stored with its events.
pub struct Outcome {
    pub rendered: Rendered,
    pub position: Position,
    pub idempotency_stored: bool,
}

/// A command's failure: bad input found while parsing, or the command's own error.
pub enum Failure {
    Api(ApiError),
    Command(CommandError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<CommandError> for Failure {
    fn from(e: CommandError) -> Self {
        Failure::Command(e)
    }
}

/// The request's identity for the events' metadata.
pub fn metadata(
    caller: &Caller,
    headers: &HeaderMap,
    draft: Option<&IdempotencyDraft>,
) -> Metadata {
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    Metadata {
        actor: Some(caller.key_id()),
        request_id: Some(request_id),
        idempotency_key: draft.map(|d| d.key.clone()),
        ..Metadata::default()
    }
}

/// What a command gets to work with: its own copies, so it can run in a task of its own.
pub struct Ctx {
    pub state: AppState,
    /// The raw request body (parse it with `body::parse_json`).
    pub body: Bytes,
    /// Caller, request id and idempotency key, for the events' metadata.
    pub metadata: Metadata,
    /// The `Idempotency-Key` claim, if the request has one.
    pub draft: Option<IdempotencyDraft>,
}

impl<A> From<(commands::aggregate::Executed<A>, Rendered)> for Outcome {
    fn from((done, rendered): (commands::aggregate::Executed<A>, Rendered)) -> Self {
        Outcome {
            rendered,
            position: done.position,
            idempotency_stored: done.idempotency_stored,
        }
    }
}

/// Runs `command` for a `POST` to `path`.
pub async fn run<F, Fut>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    path: &str,
    body: &Bytes,
    command: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = Result<Outcome, Failure>> + Send + 'static,
{
    caller.require(Scope::Write)?;
    let claim = match idempotency::begin(state, caller, headers, "POST", path, body).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Run(claim) => Some(claim),
        Begin::NoKey => None,
    };
    let draft = claim.as_ref().map(|c| c.draft.clone());
    // Boxed: a command's future is large, and a task moves its future (and its output in the
    // same slot) around by value.
    let work = Box::pin(command(Ctx {
        state: state.clone(),
        body: body.clone(),
        metadata: metadata(caller, headers, draft.as_ref()),
        draft,
    }));
    let (result, claim) = tokio::spawn(async move { (work.await, claim) })
        .await
        .map_err(|e| ApiError::internal("command task failed", &e))?;
    let stored = |claim: &Option<idempotency::Claim>| {
        let draft = claim.as_ref().map(|c| c.draft.clone());
        async move {
            match draft {
                Some(d) => idempotency::stored_response(state, &d).await,
                None => Ok(None),
            }
        }
    };
    match result {
        Ok(outcome) => {
            if !outcome.idempotency_stored
                && let Some(response) = stored(&claim).await?
            {
                return Ok(response);
            }
            let r = outcome.rendered;
            Ok(with_position(json_text(r.status, r.body), outcome.position))
        }
        // A twin request under the same key may have finished first (its command then made
        // ours fail: the stream exists, the key is taken): its stored response is the answer.
        Err(Failure::Command(e)) => match stored(&claim).await? {
            Some(response) => Ok(response),
            None => Err(e.into()),
        },
        Err(Failure::Api(e)) => Err(e),
    }
}
