//! Errors of the write side: a domain refusal (the caller's fault, 4xx) is kept apart from an
//! infrastructure failure (ours, 5xx).

use ledger::store::StoreError;
use ledger::vault::VaultError;

use crate::charge::ChargeError;
use crate::charge::refund::RefundError;
use crate::customer::CustomerError;
use crate::invoice::InvoiceError;
use crate::plan::PlanError;
use crate::subscription::SubscriptionError;
use crate::tax_rate::TaxRateError;
use crate::test_clock::TestClockError;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command.
    #[error(transparent)]
    Charge(#[from] ChargeError),
    /// The domain refused a customer command.
    #[error(transparent)]
    Customer(#[from] CustomerError),
    /// The stream kept moving under us beyond the retry bound.
    #[error("concurrent modification of {0}; retry the request")]
    Conflict(String),
    /// The `Idempotency-Key` was first used with another request (method, path or body).
    #[error("the idempotency key was used with a different request")]
    IdempotencyMismatch,
    /// Another request under the same `Idempotency-Key` stored its response first: answer that.
    #[error("a response is stored under this idempotency key already")]
    IdempotencyKeyTaken,
    /// The domain refused a refund.
    #[error(transparent)]
    Refund(#[from] RefundError),
    /// The domain refused an invoice command.
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
    /// The domain refused a subscription command.
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    /// The domain refused a plan command.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The domain refused a tax-rate command.
    #[error(transparent)]
    TaxRate(#[from] TaxRateError),
    /// Personal data could not be sealed or opened.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The domain refused a test-clock command.
    #[error(transparent)]
    TestClock(#[from] TestClockError),
    /// A command needs something the customer does not have (a payment method, a price in
    /// its currency).
    #[error("{0}")]
    Precondition(String),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
