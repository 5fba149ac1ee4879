//! `Idempotency-Key` (API.md): same key + same request replays the first response
//! (`Idempotent-Replayed: true`); same key + another request is 422; same key while the first
//! request is still running is 409. Keys are scoped to the API key that sent them.
//!
//! The response is stored by the command itself, in the same transaction as its events; this
//! module checks, replays, and guards against two requests of this process running at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use commands::charge::IdempotencyDraft;
use ledger::event::IdempotencyRecord;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::ApiError;
use super::respond::with_position;
use crate::state::AppState;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted (Stripe's limit).
pub const KEY_MAX_BYTES: usize = 255;

/// A request running under an idempotency key; the key is released from the in-flight set when
/// this is dropped, whatever happened.
pub struct Claim {
    pub draft: IdempotencyDraft,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(&(self.draft.api_key_id.clone(), self.draft.key.clone()));
        }
    }
}

pub enum Begin {
    /// No key: run normally.
    NoKey,
    /// The first response, to send again.
    Replay(Response),
    /// Run, and store the response under this claim.
    Run(Claim),
}

/// SHA-256 over method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn begin(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Begin, ApiError> {
    let Some(raw) = headers.get(HEADER) else {
        return Ok(Begin::NoKey);
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= KEY_MAX_BYTES && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "idempotency_key_invalid",
                None,
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
        })?;
    let draft = IdempotencyDraft {
        api_key_id: caller.key_id(),
        key: key.to_string(),
        fingerprint: fingerprint(method, path, body),
    };
    if let Some(record) = state
        .store
        .find_idempotency(&draft.api_key_id, &draft.key)
        .await?
    {
        return replay(&record, &draft.fingerprint).map(Begin::Replay);
    }
    let claimed = state
        .in_flight
        .lock()
        .map(|mut set| set.insert((draft.api_key_id.clone(), draft.key.clone())))
        .unwrap_or(false);
    if !claimed {
        return Err(ApiError::idempotency_in_flight());
    }
    Ok(Begin::Run(Claim {
        draft,
        in_flight: state.in_flight.clone(),
    }))
}

/// After a command that did not store its own response (another request finished first, or the
/// outcome is still unknown): the stored response if there is one.
pub async fn stored_response(
    state: &AppState,
    draft: &IdempotencyDraft,
) -> Result<Option<Response>, ApiError> {
    match state
        .store
        .find_idempotency(&draft.api_key_id, &draft.key)
        .await?
    {
        Some(record) => replay(&record, &draft.fingerprint).map(Some),
        None => Ok(None),
    }
}

fn replay(record: &IdempotencyRecord, fingerprint: &str) -> Result<Response, ApiError> {
    if record.fingerprint != fingerprint {
        return Err(ApiError::idempotency_mismatch());
    }
    let status = StatusCode::from_u16(record.status).unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        record.body.clone(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(with_position(response, record.position))
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn fingerprint_separates_its_parts() {
        assert_ne!(
            fingerprint("POST", "/a", b"bc"),
            fingerprint("POST", "/ab", b"c")
        );
        assert_eq!(
            fingerprint("POST", "/a", b"{}"),
            fingerprint("POST", "/a", b"{}")
        );
        assert_eq!(fingerprint("POST", "/a", b"{}").len(), 64);
    }
}
