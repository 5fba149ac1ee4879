//! Local stand-ins for the gateways' APIs, for tests (feature `stand-ins`): Stripe and PayPal
//! cannot be reached from the machines this runs on, so their clients are exercised against
//! servers that speak the same wire format, started by the tests themselves.

mod knobs;
pub mod paypal;
pub mod stripe;

pub use paypal::PaypalStandIn;
pub use stripe::StripeStandIn;
