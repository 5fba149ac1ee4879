//! Errors of the write side: a domain refusal (the caller's fault, 4xx) is kept apart from an
//! infrastructure failure (ours, 5xx).

use ledger::store::StoreError;

use crate::charge::ChargeError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command.
    #[error(transparent)]
    Charge(#[from] ChargeError),
    /// The stream kept moving under us beyond the retry bound.
    #[error("concurrent modification of {0}; retry the request")]
    Conflict(String),
    /// An idempotency key is being used by another request that has not finished.
    #[error("a request with this idempotency key is in progress")]
    InProgress,
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
