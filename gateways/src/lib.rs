//! The gateway layer of Kanizsa Billing.
//!
//! Everything that moves money in the outside world goes through the [`Gateway`] trait: a
//! [`charge`](Gateway::charge) and a [`refund`](Gateway::refund), each carrying an idempotency key so
//! that a retry after a timeout or a crash never charges a card twice (see DESIGN.md, "Commands"
//! and "Gateways": a charge is two-phase, and a recovery reactor completes a requested charge with
//! the same key).
//!
//! Implementations:
//! - [`SandboxGateway`]: deterministic and in-memory, answering Stripe-like test tokens
//!   (`tok_visa`, `tok_chargeDeclined`, …), including tokens that model the timeout windows used by
//!   recovery tests.
//! - [`StripeGateway`](stripe::StripeGateway): PaymentIntents confirmed at creation, refunds,
//!   through async-stripe.
//! - [`PaypalGateway`](paypal::PaypalGateway): vaulted PayPal payment sources charged as Orders v2
//!   (created, then captured), refunds of captures, webhook verification, through reqwest.
//!
//! Gateways receive gateway tokens (`tok_…`, `pm_…`, PayPal vault ids), never card numbers.

#![warn(missing_docs)]

pub mod gateway;
pub mod paypal;
pub mod registry;
pub mod sandbox;
#[cfg(feature = "stand-ins")]
pub mod stand_in;
pub mod stripe;
pub mod tls;
pub mod webhook;

pub use gateway::{
    CaptureRequest, ChargeOutcome, ChargeRequest, FailureCode, Gateway, GatewayError, LinkOutcome,
    LinkRequest, Lookup, RefundOutcome, RefundRequest,
};
pub use registry::Gateways;
pub use sandbox::SandboxGateway;
