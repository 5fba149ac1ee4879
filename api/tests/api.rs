//! End-to-end tests of the `api` crate: the real server over real HTTP, the real `billing`
//! binary, real PostgreSQL and SQLite. Only third parties would be stood in for.
//! One test binary for the crate (link time); the modules below group the scenarios.

#[path = "api/support.rs"]
mod support;

#[path = "api/analytics.rs"]
mod analytics;
#[path = "api/balance.rs"]
mod balance;
#[path = "api/billing.rs"]
mod billing;
#[path = "api/billing_more.rs"]
mod billing_more;
#[path = "api/cli.rs"]
mod cli;
#[path = "api/crash.rs"]
mod crash;
#[path = "api/customers.rs"]
mod customers;
#[path = "api/events.rs"]
mod events;
#[path = "api/failover.rs"]
mod failover;
#[path = "api/fraud.rs"]
mod fraud;
#[path = "api/gateway_risk.rs"]
mod gateway_risk;
#[path = "api/multiprocess.rs"]
mod multiprocess;
#[path = "api/ops.rs"]
mod ops;
#[path = "api/payment.rs"]
mod payment;
#[path = "api/paypal.rs"]
mod paypal;
#[path = "api/plans.rs"]
mod plans;
#[path = "api/reactor.rs"]
mod reactor;
#[path = "api/reads.rs"]
mod reads;
#[path = "api/refunds.rs"]
mod refunds;
#[path = "api/replay.rs"]
mod replay;
#[path = "api/stripe.rs"]
mod stripe;
#[path = "api/stripe_customers.rs"]
mod stripe_customers;
#[path = "api/tax_rates.rs"]
mod tax_rates;
#[path = "api/webhooks.rs"]
mod webhooks;
