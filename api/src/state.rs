//! What every request handler shares.

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use commands::aggregate::Executor;
use commands::billing::{Billing, BillingConfig};
use commands::charge::ChargeService;
use commands::clock::{Clock, SystemClock};
use commands::customer::CustomerService;
use gateways::{Gateways, SandboxGateway};
use ledger::access::KeyStore;
use ledger::store::{AnyStore, EventStore};
use ledger::vault::{Key, Vault};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::http::key_cache::KeyCache;

/// What every request handler shares: one allocation, so the clone each request and each
/// command task takes is a reference count, not a copy of every service (that copy and its drop
/// were ~4 % of the server's CPU under the charge load). Changes (at start-up, in tests) go
/// through [`DerefMut`], which copies the state first if it is shared: a clone is a value of its
/// own, as before.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<dyn EventStore>,
    pub keys: Arc<dyn KeyStore>,
    /// Where charges and refunds go, by the payment method's gateway.
    pub gateways: Gateways,
    pub charges: Arc<ChargeService>,
    /// Runs commands of the aggregates without side effects (plans, …).
    pub executor: Executor,
    /// Flows across aggregates: subscriptions, invoices, dunning, test clocks.
    pub billing: Billing,
    /// Customer commands that seal, open and erase personal data.
    pub customers: CustomerService,
    pub clock: Arc<dyn Clock>,
    pub metrics: PrometheusHandle,
    /// `(api key id, idempotency key)` of requests running in this process.
    pub in_flight: Arc<Mutex<HashSet<(String, String)>>>,
    /// Recently authenticated keys (`http/key_cache.rs`).
    pub key_cache: Arc<KeyCache>,
    /// The NATS connection of the relay, for `/ready`; `None` when `NATS_URL` is not set.
    pub nats: Option<projections::relay::NatsStatus>,
    /// The read models (`projections`), for the read API.
    pub read: projections::store::ReadStore,
    /// Turns recorded webhook deliveries into events on our charges.
    pub reactor: Arc<commands::reactor::Reactor>,
    /// The Stripe client when `STRIPE_SECRET_KEY` is set (also in `gateways`), for its checks.
    pub stripe: Option<Arc<gateways::stripe::StripeGateway>>,
    /// The PayPal client when `PAYPAL_CLIENT_ID` is set (also in `gateways`), for webhooks.
    pub paypal: Option<Arc<gateways::paypal::PaypalGateway>>,
    /// `PAYPAL_WEBHOOK_ID`: what PayPal verifies deliveries against.
    pub paypal_webhook_id: Option<String>,
    /// Verification calls to PayPal in flight at once (beyond: 503, PayPal delivers again), so
    /// a flood of forged deliveries cannot spend our PayPal quota.
    pub paypal_verifications: Arc<tokio::sync::Semaphore>,
    /// Secrets that sign Stripe's webhooks (`STRIPE_WEBHOOK_SECRET`; several while rotating).
    pub stripe_webhook_secrets: Arc<Vec<String>>,
    pub started: Instant,
}

impl AppState {
    /// `master` wraps the customers' data keys (`BILLING_MASTER_KEY`).
    pub fn new(store: &AnyStore, gateways: impl Into<Gateways>, master: Key) -> AppState {
        let gateways = gateways.into();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let events = store.events();
        let executor = Executor::new(events.clone(), clock.clone());
        let charges = Arc::new(ChargeService::new(
            events.clone(),
            gateways.clone(),
            clock.clone(),
        ));
        let reactor = Arc::new(commands::reactor::Reactor::new(
            charges.clone(),
            events.clone(),
        ));
        AppState(Arc::new(Shared {
            billing: Billing::new(executor.clone(), charges.clone(), BillingConfig::default()),
            customers: CustomerService::new(
                executor.clone(),
                Vault::new(master, store.data_keys()),
                clock.clone(),
            ),
            charges,
            executor,
            store: events,
            keys: store.keys(),
            gateways,
            clock,
            metrics: crate::http::metrics::handle(),
            in_flight: Arc::default(),
            key_cache: Arc::default(),
            nats: None,
            read: projections::store::ReadStore::live(store),
            reactor,
            stripe: None,
            paypal: None,
            paypal_webhook_id: None,
            paypal_verifications: Arc::new(tokio::sync::Semaphore::new(
                crate::http::webhooks_paypal::VERIFICATIONS_IN_FLIGHT,
            )),
            stripe_webhook_secrets: Arc::default(),
            started: Instant::now(),
        }))
    }

    /// Numbering and dunning settings other than the defaults.
    pub fn configure_billing(&mut self, config: BillingConfig) {
        self.billing = Billing::new(self.executor.clone(), self.charges.clone(), config);
    }

    /// The sandbox gateway: the default until Stripe or PayPal keys are configured.
    pub fn with_sandbox(store: &AnyStore, master: Key) -> AppState {
        Self::new(store, Arc::new(SandboxGateway::new()), master)
    }
}
