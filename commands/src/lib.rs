//! The billing domain: the write side.
//!
//! Each aggregate is a pair of pure functions — `decide(&State, Command, now) -> Result<Vec<Event>,
//! DomainError>` and `evolve(State, &Event) -> State` — plus a service that loads the aggregate's
//! stream, decides, and appends with the expected version. Side effects with the outside world
//! (a gateway call) happen in the service, between two appends, never inside `decide`.
//!
//! Today: [`charge`] (two-phase charging through a gateway), [`plan`] and [`tax_rate`] (run by
//! the generic [`aggregate::Executor`]) and the billing [`clock`]. Customers, subscriptions and
//! invoices follow the same shape.
//! [`pricing`] holds the pure money-and-time rules: half-even rounding, intervals, proration, tax.

pub mod aggregate;
pub mod billing;
pub mod charge;
pub mod clock;
pub mod customer;
pub mod error;
pub mod gateway_event;
pub mod invoice;
pub mod plan;
pub mod pricing;
pub mod reactor;
pub mod stored;
pub mod subscription;
pub mod tax_rate;
pub mod test_clock;

pub use error::CommandError;
