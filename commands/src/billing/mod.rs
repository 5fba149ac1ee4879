//! Billing flows that span aggregates: subscribing (and invoicing the first period), renewals,
//! invoices drafted with the customer's taxes and credit, finalized with a gapless number and
//! paid with the default payment method, dunning retries, and test clocks.
//!
//! Every step is a command on one aggregate whose id is derived from what it is for (the
//! invoice of a subscription period, the charge of an invoice's n-th attempt), and each step
//! first looks at what is recorded: a flow cut anywhere (a crash, an error) is completed by
//! running it again, never doubled. Business time is the billing clock — or the customer's test
//! clock — so `occurred_at` of every event is the time the step belongs to.

mod credit_notes;
mod invoicing;
mod numbering;
mod schedule;
mod scheduler;
mod subscribing;
mod taxes;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use self::credit_notes::CreditNoteRequest;
pub use self::invoicing::{InvoiceRequest, Reply};
pub use self::schedule::Job;
pub use self::scheduler::{Scheduler, Tick};
pub use self::subscribing::Subscribe;
use self::taxes::TaxIndex;
use crate::aggregate::Executor;
use crate::charge::ChargeService;
use crate::clock::FixedClock;
use crate::customer::Customer;
use crate::error::CommandError;
use crate::subscription::DunningOutcome;
use crate::test_clock::TestClock;

/// How invoices are numbered and failed payments retried.
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// Prefix of invoice numbers (`KB` → `KB-000001`): 1 to 12 of `A-Z`, `0-9`.
    pub invoice_prefix: String,
    /// Days after the first failed attempt at which payment is retried (Stripe's default
    /// schedule is similar): 1, 3, 5, 7.
    pub retry_days: Vec<u32>,
    /// What happens to the subscription when the retries are used up.
    pub when_exhausted: DunningOutcome,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            invoice_prefix: "KB".into(),
            retry_days: vec![1, 3, 5, 7],
            when_exhausted: DunningOutcome::Cancel,
        }
    }
}

impl BillingConfig {
    /// Checks the prefix and the retry schedule (strictly increasing, at most 10 retries).
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        let p = &self.invoice_prefix;
        if p.is_empty()
            || p.len() > 12
            || !p
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(format!("invoice prefix {p:?}: 1 to 12 of A-Z and 0-9"));
        }
        let increasing = self.retry_days.windows(2).all(|w| w[0] < w[1]);
        if !increasing || self.retry_days.len() > 10 || self.retry_days.first() == Some(&0) {
            return Err("retry days: at most 10, increasing, each at least 1".into());
        }
        Ok(())
    }
}

/// The billing flows, at one business time.
#[derive(Clone)]
pub struct Billing {
    executor: Executor,
    charges: Arc<ChargeService>,
    config: Arc<BillingConfig>,
    taxes: Arc<TaxIndex>,
}

impl Billing {
    pub fn new(executor: Executor, charges: Arc<ChargeService>, config: BillingConfig) -> Self {
        Self {
            executor,
            charges,
            config: Arc::new(config),
            taxes: Arc::default(),
        }
    }

    /// The same flows, at business time `at`.
    pub fn at(&self, at: DateTime<Utc>) -> Billing {
        let clock = Arc::new(FixedClock(at));
        Billing {
            executor: self.executor.with_clock(clock.clone()),
            charges: Arc::new(self.charges.with_clock(clock)),
            config: self.config.clone(),
            taxes: self.taxes.clone(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.executor.now()
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// The flows at the customer's time: its test clock's frozen time, or the billing clock.
    ///
    /// # Errors
    /// Store failures; a missing test clock is corrupt data.
    pub async fn for_customer(&self, customer: &Customer) -> Result<Billing, CommandError> {
        let Some(clock) = customer.test_clock else {
            return Ok(self.clone());
        };
        let loaded = self.executor.load::<TestClock>(&clock).await?;
        let clock = loaded
            .state
            .ok_or(crate::test_clock::TestClockError::NotFound)?;
        Ok(self.at(clock.frozen_time))
    }
}
