//! The read side of Kanizsa Billing (CQRS projections). So far it holds the [`relay`], which
//! publishes the log to NATS JetStream; no read model exists yet.
//!
//! What it will hold (see DESIGN.md, "Projections"):
//!
//! - **Projections**: each a pure function of `(read-model transaction, event)` — no clock, no
//!   network, no randomness — so replaying the log rebuilds the live read models exactly. Read
//!   models: customers, payment methods, plans, subscriptions, invoices and their lines, charges
//!   and refunds, revenue (per day/month/currency, MRR movements), a double-entry journal whose
//!   trial balance is zero per currency, the audit log, and gateway events.
//! - **Checkpoints**: each projection stores the last position it applied in the same transaction
//!   as its read-model rows, skips events at or below it, and fetches a missing position from the
//!   event store (`ledger::store::read_page`) when an event arrives with a gap. Delivery may be
//!   at-least-once; the effect is exactly-once.
//! - **Feeds**: in the embedded deployment an in-process feed that tails the store in position
//!   order; in production the [`relay`] (done), which publishes each event to NATS JetStream
//!   (stream `BILLING_EVENTS`, subjects `billing.events.<category>.<EventType>`, `Nats-Msg-Id` =
//!   event id), and workers that consume it as durable pull consumers, acking only after their
//!   transaction commits.
//! - **Reactors**: the side-effect twins of projections (complete a pending charge, email an
//!   invoice, retry a failed payment), checkpointed the same way.
//! - **Replay**: rebuild any or all read models into a fresh schema and swap it in, optionally
//!   up to a position or a moment (`--to-position`, `--as-of`) for financial reconstruction.
//!
//! Like `commands`, this crate depends only downward (on `ledger`); `api` serves its read models.

pub mod relay;
