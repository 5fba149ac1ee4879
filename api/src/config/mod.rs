//! Configuration, from flags or the environment (see `env.example`).

pub mod fraud;

use std::path::PathBuf;

use clap::Args;
use commands::billing::BillingConfig;
use commands::subscription::DunningOutcome;
use ledger::store::{AnyStore, StoreError};
use ledger::vault::{Key, master_key};

/// Where the book is kept; shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct StoreConfig {
    /// PostgreSQL URL; when unset, the embedded SQLite store under BILLING_DATA_DIR is used.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory of the embedded store.
    #[arg(
        long,
        env = "BILLING_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// 64 hex digits: the master key that wraps each customer's data key. When unset, the key in
    /// `<data dir>/master.key` is used (created on first start).
    #[arg(
        long,
        env = "BILLING_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Prefix of invoice numbers (`KB` → `KB-000001`).
    #[arg(
        long,
        env = "BILLING_INVOICE_PREFIX",
        default_value = "KB",
        global = true
    )]
    pub invoice_prefix: String,
    /// Days after a failed first payment attempt at which it is retried.
    #[arg(
        long,
        env = "BILLING_RETRY_DAYS",
        default_value = "1,3,5,7",
        global = true
    )]
    pub retry_days: String,
    /// What a subscription becomes when the retries are used up: `cancel` or `unpaid`.
    #[arg(
        long,
        env = "BILLING_DUNNING_EXHAUSTED",
        default_value = "cancel",
        global = true
    )]
    pub dunning_exhausted: String,
    /// Seconds between two runs of the scheduler (renewals, trial ends, retries).
    #[arg(
        long,
        env = "BILLING_SCHEDULER_INTERVAL_S",
        default_value_t = 10,
        global = true
    )]
    pub scheduler_interval_s: u64,
    /// Seconds between two looks for charges and refunds left without a gateway outcome.
    #[arg(
        long,
        env = "BILLING_RECOVERY_INTERVAL_S",
        default_value_t = 30,
        global = true
    )]
    pub recovery_interval_s: u64,
    /// Seconds a charge or refund must have been pending before recovery completes it (a younger
    /// one may still be in the hands of the request that made it).
    #[arg(
        long,
        env = "BILLING_RECOVERY_GRACE_S",
        default_value_t = 60,
        global = true
    )]
    pub recovery_grace_s: u64,
    /// NATS server: `billing serve` relays the log to its JetStream stream `BILLING_EVENTS`.
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// The JetStream stream of this store's events (one stream per event store).
    #[arg(
        long,
        env = "BILLING_NATS_STREAM",
        default_value = "BILLING_EVENTS",
        global = true
    )]
    pub nats_stream: String,
    /// The subjects' prefix: events go to `<prefix>.<category>.<EventType>`.
    #[arg(
        long,
        env = "BILLING_NATS_SUBJECT_PREFIX",
        default_value = "billing.events",
        global = true
    )]
    pub nats_subject_prefix: String,
}

impl StoreConfig {
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            database_url: None,
            data_dir,
            master_key: None,
            invoice_prefix: "KB".into(),
            retry_days: "1,3,5,7".into(),
            dunning_exhausted: "cancel".into(),
            scheduler_interval_s: 10,
            recovery_interval_s: 30,
            recovery_grace_s: 60,
            nats_url: None,
            nats_stream: projections::relay::DEFAULT_STREAM.into(),
            nats_subject_prefix: projections::relay::DEFAULT_SUBJECT_PREFIX.into(),
        }
    }

    /// Where the relay publishes and the workers consume.
    pub fn relay(&self) -> projections::relay::RelayConfig {
        projections::relay::RelayConfig::named(
            self.nats_stream.clone(),
            self.nats_subject_prefix.clone(),
        )
    }

    /// Opens the configured store (does not migrate).
    pub async fn open(&self) -> Result<AnyStore, StoreError> {
        let url = self.database_url.as_deref().filter(|u| !u.is_empty());
        AnyStore::open(url, &self.data_dir).await
    }

    /// The master key: configured, or from the key file in the data directory (created when
    /// missing).
    pub fn master_key(&self) -> Result<Key, String> {
        let configured = self.master_key.as_deref().filter(|k| !k.is_empty());
        let file = self.data_dir.join("master.key");
        if configured.is_none() {
            std::fs::create_dir_all(&self.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", self.data_dir.display()))?;
        }
        let (key, created) = master_key(configured, &file).map_err(|e| e.to_string())?;
        if created {
            tracing::warn!(
                file = %file.display(),
                "created a master key for personal data; keep it safe (losing it loses every customer's personal data) or set BILLING_MASTER_KEY"
            );
        }
        Ok(key)
    }

    /// The billing settings, checked.
    pub fn billing(&self) -> Result<BillingConfig, String> {
        let retry_days = self
            .retry_days
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<u32>()
                    .map_err(|_| format!("BILLING_RETRY_DAYS: {d:?} is not a number of days"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let when_exhausted = match self.dunning_exhausted.as_str() {
            "cancel" => DunningOutcome::Cancel,
            "unpaid" => DunningOutcome::MarkUnpaid,
            other => {
                return Err(format!(
                    "BILLING_DUNNING_EXHAUSTED: {other:?} is not cancel or unpaid"
                ));
            }
        };
        let config = BillingConfig {
            invoice_prefix: self.invoice_prefix.clone(),
            retry_days,
            when_exhausted,
        };
        config.check()?;
        Ok(config)
    }

    pub fn scheduler_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.scheduler_interval_s.max(1))
    }

    pub fn recovery_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.recovery_interval_s.max(1))
    }

    /// Capped at `u32::MAX` seconds (136 years), so that `now - grace` cannot overflow.
    pub fn recovery_grace(&self) -> chrono::Duration {
        let seconds = u32::try_from(self.recovery_grace_s).unwrap_or(u32::MAX);
        chrono::Duration::seconds(i64::from(seconds))
    }

    /// `STRIPE_WEBHOOK_SECRET`: the endpoint secrets (`whsec_…`), comma-separated (several
    /// during a rotation). Empty: `POST /webhooks/stripe` refuses every delivery.
    pub fn stripe_webhook_secrets() -> Vec<String> {
        std::env::var("STRIPE_WEBHOOK_SECRET")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `STRIPE_SECRET_KEY` turns Stripe on (it becomes the default gateway and the sandbox goes
    /// away); `STRIPE_API_BASE` points the client elsewhere (a stand-in), `STRIPE_TIMEOUT_MS`
    /// bounds each call (default 30 s).
    pub fn stripe() -> Result<Option<gateways::stripe::StripeConfig>, String> {
        let Some(key) = std::env::var("STRIPE_SECRET_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
        else {
            return Ok(None);
        };
        let mut config = gateways::stripe::StripeConfig::new(key.trim());
        if let Some(base) = std::env::var("STRIPE_API_BASE")
            .ok()
            .filter(|b| !b.is_empty())
        {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(format!(
                    "STRIPE_API_BASE must be an http(s) URL, not {base:?}"
                ));
            }
            config.api_base = base;
        }
        if let Ok(ms) = std::env::var("STRIPE_TIMEOUT_MS") {
            let ms: u64 = ms.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                format!("STRIPE_TIMEOUT_MS must be a positive integer, not {ms:?}")
            })?;
            config.timeout = std::time::Duration::from_millis(ms);
        }
        Ok(Some(config))
    }

    /// `PAYPAL_CLIENT_ID` and `PAYPAL_CLIENT_SECRET` turn PayPal on; `PAYPAL_API_BASE` (default
    /// PayPal's live API; `https://api-m.sandbox.paypal.com` for its sandbox, or a stand-in),
    /// `PAYPAL_TIMEOUT_MS` per call (default 30 s).
    pub fn paypal() -> Result<Option<gateways::paypal::PaypalConfig>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let (id, secret) = match (var("PAYPAL_CLIENT_ID"), var("PAYPAL_CLIENT_SECRET")) {
            (None, None) => return Ok(None),
            (Some(id), Some(secret)) => (id, secret),
            _ => return Err("PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET go together".into()),
        };
        let mut config = gateways::paypal::PaypalConfig::new(id.trim(), secret.trim());
        if let Some(base) = var("PAYPAL_API_BASE") {
            if !(base.starts_with("http://") || base.starts_with("https://")) {
                return Err(format!(
                    "PAYPAL_API_BASE must be an http(s) URL, not {base:?}"
                ));
            }
            config.api_base = base;
        }
        if let Some(ms) = var("PAYPAL_TIMEOUT_MS") {
            let ms: u64 = ms.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                format!("PAYPAL_TIMEOUT_MS must be a positive integer, not {ms:?}")
            })?;
            config.timeout = std::time::Duration::from_millis(ms);
        }
        Ok(Some(config))
    }

    /// `BILLING_GATEWAY_FAILOVER=true`: a charge whose gateway cannot be reached moves to the
    /// customer's method at another configured gateway. Off by default.
    pub fn failover() -> Result<bool, String> {
        match std::env::var("BILLING_GATEWAY_FAILOVER")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(format!(
                "BILLING_GATEWAY_FAILOVER must be true or false, not {other:?}"
            )),
        }
    }

    /// `PAYPAL_WEBHOOK_ID`: the id PayPal gave our webhook; deliveries are verified against it.
    pub fn paypal_webhook_id() -> Option<String> {
        std::env::var("PAYPAL_WEBHOOK_ID")
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// "postgres" or "sqlite (<dir>)", for logs.
    pub fn describe(&self) -> String {
        match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(_) => "postgres".to_string(),
            None => format!("sqlite ({})", self.data_dir.display()),
        }
    }
}
