//! `billing serve`: the HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use gateways::paypal::PaypalGateway;
use gateways::stripe::StripeGateway;
use gateways::{Gateway, Gateways, SandboxGateway};
use ledger::access::{Scope, create_key};

use crate::config::StoreConfig;
use crate::state::AppState;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BILLING_ADDR", default_value = "0.0.0.0:8000")]
    pub addr: SocketAddr,
    /// Do not run the projection workers in this process (run `billing worker` elsewhere).
    #[arg(long)]
    pub no_workers: bool,
}

impl ServeArgs {
    /// The arguments `billing` (no subcommand) serves with: the environment or the defaults. A
    /// `BILLING_ADDR` that does not parse is an error, never a silent fallback.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("BILLING_ADDR") {
            Ok(a) => a
                .parse()
                .map(|addr| ServeArgs {
                    addr,
                    no_workers: false,
                })
                .map_err(|e| {
                    format!("BILLING_ADDR={a:?} is not an address like 127.0.0.1:8000: {e}")
                }),
            Err(_) => Ok(ServeArgs {
                addr: SocketAddr::from(([0, 0, 0, 0], 8000)),
                no_workers: false,
            }),
        }
    }
}

pub async fn run(config: &StoreConfig, args: ServeArgs) -> Result<ExitCode, String> {
    let (mut state, store) = prepare(config).await?;
    start_background(&mut state, &store, config, !args.no_workers).await?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    tracing::info!(addr = %args.addr, store = %config.describe(), gateways = ?state.gateways, "billing API listening");
    axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// `billing worker`: the relay, the projection workers, the scheduler and recovery, without HTTP.
pub async fn worker(config: &StoreConfig) -> Result<ExitCode, String> {
    let (mut state, store) = prepare(config).await?;
    start_background(&mut state, &store, config, true).await?;
    tracing::info!(store = %config.describe(), "billing worker running (no HTTP)");
    shutdown_signal().await;
    Ok(ExitCode::SUCCESS)
}

/// The store, migrated, and the state every part shares.
async fn prepare(config: &StoreConfig) -> Result<(AppState, ledger::store::AnyStore), String> {
    let store = super::open_migrated(config).await?;
    let stripe = match StoreConfig::stripe()? {
        Some(c) => Some(Arc::new(
            StripeGateway::new(c).map_err(|e| format!("STRIPE_SECRET_KEY: {e}"))?,
        )),
        None => None,
    };
    let paypal = match StoreConfig::paypal()? {
        Some(c) => Some(Arc::new(
            PaypalGateway::new(c).map_err(|e| format!("PAYPAL_CLIENT_ID: {e}"))?,
        )),
        None => None,
    };
    // The default (bare tokens) is Stripe, else PayPal, else the sandbox alone.
    let gateways = match (&stripe, &paypal) {
        (Some(s), Some(p)) => Gateways::new(s.clone()).with(p.clone()),
        (Some(s), None) => Gateways::new(s.clone()),
        (None, Some(p)) => Gateways::new(p.clone()),
        (None, None) => Gateways::new(sandbox()?),
    };
    let mut state = AppState::new(&store, gateways, config.master_key()?);
    state.stripe = stripe;
    state.paypal = paypal;
    state.paypal_webhook_id = StoreConfig::paypal_webhook_id();
    if crash_after_gateway_charge() {
        tracing::warn!(
            "BILLING_CRASH_AFTER_GATEWAY_CHARGE is set (testing only): the process exits right after the gateway's first answer to a charge"
        );
        state.charges = Arc::new(state.charges.with_after_gateway_hook(Arc::new(|| {
            eprintln!(
                "billing: BILLING_CRASH_AFTER_GATEWAY_CHARGE: exiting after the gateway charge, before its outcome is recorded"
            );
            // At once, as if killed: no graceful shutdown, no destructors (and no core file).
            std::process::exit(137);
        })));
    }
    state.stripe_webhook_secrets = Arc::new(StoreConfig::stripe_webhook_secrets());
    if StoreConfig::failover()? {
        tracing::info!("gateway failover on");
        state.charges = Arc::new(state.charges.with_failover(true));
    }
    let fraud = crate::config::fraud::rules(|k| std::env::var(k).ok())?;
    if fraud.enabled() {
        tracing::info!(rules = ?fraud, "fraud screening on");
        state.charges = Arc::new(state.charges.with_fraud_rules(fraud));
    }
    // After the charge service is final: the billing flows charge through it.
    state.configure_billing(config.billing()?);
    ensure_admin_key(&state).await?;
    Ok((state, store))
}

/// What runs beside HTTP: relay (with NATS), workers (unless `workers` is false), recovery and
/// the scheduler.
async fn start_background(
    state: &mut AppState,
    store: &ledger::store::AnyStore,
    config: &StoreConfig,
    workers: bool,
) -> Result<(), String> {
    let read = super::background::ensure_read_models(store).await?;
    if workers {
        let nats = config.nats_url.clone().map(|url| (url, config.relay()));
        super::background::spawn_workers(store, read, nats);
    }
    if let Some(url) = config.nats_url.clone() {
        let status = projections::relay::NatsStatus::new();
        state.nats = Some(status.clone());
        super::background::spawn_relay(store.clone(), url, status, config.relay());
    }

    super::background::spawn_recovery(
        state.clone(),
        config.recovery_interval(),
        config.recovery_grace(),
    );
    super::background::spawn_reactor(state.clone(), REACTOR_INTERVAL);
    super::background::spawn_scheduler(state.clone(), store.clone(), config.scheduler_interval());
    Ok(())
}

/// How often the webhook reactor looks for deliveries not reacted to.
const REACTOR_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The sandbox gateway; with `BILLING_SANDBOX_STATE=<file>` (testing only) its book is kept in that
/// file and survives a restart, as a real gateway's memory outlives ours.
fn sandbox() -> Result<Arc<dyn Gateway>, String> {
    match std::env::var_os("BILLING_SANDBOX_STATE").filter(|p| !p.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            let gateway = SandboxGateway::with_state_file(&path)
                .map_err(|e| format!("BILLING_SANDBOX_STATE: {}: {e}", path.display()))?;
            tracing::warn!(file = %path.display(), "sandbox gateway state kept in a file (testing only)");
            Ok(Arc::new(gateway))
        }
        None => Ok(Arc::new(SandboxGateway::new())),
    }
}

/// `BILLING_CRASH_AFTER_GATEWAY_CHARGE=1` (testing only): exit between the gateway's answer to a
/// charge and the outcome's append, to test recovery.
fn crash_after_gateway_charge() -> bool {
    std::env::var("BILLING_CRASH_AFTER_GATEWAY_CHARGE").is_ok_and(|v| v == "1" || v == "true")
}

/// On a first start (no active key) an admin key is created and printed once on stdout.
async fn ensure_admin_key(state: &AppState) -> Result<(), String> {
    let keys = state.keys.list_keys().await.map_err(|e| e.to_string())?;
    if keys.iter().any(|k| k.revoked_at.is_none()) {
        return Ok(());
    }
    let (key, secret) = create_key(state.keys.as_ref(), Scope::Admin, state.clock.now())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "No API key existed: created admin key {} — shown only this once:",
        key.id
    );
    println!("{}", secret.expose());
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
