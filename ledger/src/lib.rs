//! The book of Kanizsa Billing.
//!
//! Everything that happens to money, customers, plans, subscriptions and invoices is an immutable
//! event in one append-only log. This crate owns that log and the vocabulary around it:
//!
//! - [`money`]: integer minor units with ISO-4217 exponents and checked arithmetic;
//! - [`ids`]: typed, prefixed identifiers (`cus_…`, `ch_…`);
//! - [`event`]: the envelope of a recorded event and what an append asks for;
//! - [`store`]: the [`store::EventStore`] trait, its group-commit writer, and the PostgreSQL and
//!   SQLite stores that implement it with the same semantics;
//! - [`chain`]: the SHA-256 hash chain that makes tampering evident;
//! - [`access`]: hashed API keys with scopes;
//! - [`vault`]: personal data sealed per subject, erasable by destroying its key.
//!
//! This crate knows no HTTP, no gateway and no NATS.

pub mod access;
pub mod chain;
pub mod event;
pub mod ids;
pub mod money;
pub mod store;
pub mod upcast;
pub mod vault;

pub use event::{
    AppendRequest, Committed, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent,
    StreamId,
};
pub use store::{AppendError, EventStore, StoreError};
