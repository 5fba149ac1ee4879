//! The read side of Kanizsa Billing (CQRS projections): read models built from the log.
//!
//! - [`projection`]: what a projection is — a pure function of `(read set, event)`, no clock,
//!   network or randomness — so replaying the log rebuilds the live read models exactly.
//! - [`views`]: document read models (customers, plans, tax rates, subscriptions, invoices,
//!   charges), each the write side's own folded state per aggregate.
//! - [`pointers`]: refunds and credit notes by their own id (they live in charges and invoices).
//! - [`journal`]: the double-entry journal; its trial balance is zero per currency.
//! - [`analytics`]: payment outcomes per day; MRR and its movements per month.
//! - [`books`]: the books at any past moment, from the log alone (the journal run in memory).
//! - [`store`]: the read-model tables (PostgreSQL or the embedded SQLite file), checkpoints, the
//!   queries of the read API, and the atomic swap a replay ends with.
//! - [`worker`]: exactly-once application whatever the delivery (checkpoint in the same
//!   transaction as the rows; redeliveries skipped; gaps read from the store), fed in-process
//!   ([`worker::local`]) or by NATS JetStream durable pull consumers ([`worker::nats`]).
//! - [`relay`]: publishes the log to JetStream (stream `BILLING_EVENTS`, subjects
//!   `billing.events.<category>.<EventType>`, `Nats-Msg-Id` = event id).
//!
//! Dependencies: `ledger` (events, stores) and `commands` (the event types and the aggregates'
//! `evolve`, which the document views reuse).

pub mod analytics;
pub mod books;
pub mod gateway_events;
pub mod journal;
pub mod pointers;
pub mod projection;
pub mod relay;
pub mod store;
pub mod views;
pub mod worker;

use std::sync::Arc;

use projection::Projection;

/// Every projection the service keeps, by name.
#[must_use]
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(views::customers()),
        Arc::new(views::plans()),
        Arc::new(views::tax_rates()),
        Arc::new(views::subscriptions()),
        Arc::new(views::invoices()),
        Arc::new(views::charges()),
        Arc::new(pointers::Refunds),
        Arc::new(pointers::CreditNotes),
        Arc::new(journal::Journal),
        Arc::new(analytics::Payments),
        Arc::new(analytics::Mrr),
        Arc::new(gateway_events::GatewayEvents),
    ]
}
