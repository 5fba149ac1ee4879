//! Running the relay in a service: connecting to NATS without ever failing the start, and
//! relaying only in the one process that holds the `relay` role.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::Client;
use async_nats::connection::State;
use ledger::store::{AnyStore, Leadership};

use super::{Relay, RelayConfig};

/// Pause between two rounds once caught up (new events are picked up this late at most).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Pause before trying again to take the role another process holds.
const FOLLOWER_WAIT: Duration = Duration::from_secs(5);
/// First and longest pause after a failure (NATS or store down); doubles in between.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

fn backoff(previous: Option<Duration>) -> Duration {
    previous.map_or(BACKOFF_MIN, |d| (d * 2).min(BACKOFF_MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether this process's NATS connection is up, for `/ready`: `disconnected` until the first
/// connection succeeds and while the client reconnects.
#[derive(Clone, Default)]
pub struct NatsStatus(Arc<OnceLock<Client>>);

impl NatsStatus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the client once connected (a second call is ignored).
    pub fn set(&self, client: Client) {
        let _ = self.0.set(client);
    }

    pub fn connected(&self) -> bool {
        self.0
            .get()
            .is_some_and(|c| c.connection_state() == State::Connected)
    }

    /// `connected` or `disconnected`.
    pub fn as_str(&self) -> &'static str {
        if self.connected() {
            "connected"
        } else {
            "disconnected"
        }
    }
}

/// Connects to NATS at `url`, trying again with backoff (0.5 s doubling to 30 s, each failure
/// logged) until it answers. Once connected, the client reconnects on its own.
pub async fn connect(url: &str) -> Client {
    let mut pause = None;
    loop {
        match async_nats::ConnectOptions::new()
            .name("billing-relay")
            .connect(url)
            .await
        {
            Ok(client) => {
                tracing::info!(url, "connected to NATS");
                return client;
            }
            Err(e) => {
                let wait = backoff(pause);
                pause = Some(wait);
                let retry_in_ms = millis(wait);
                tracing::warn!(url, error = %e, retry_in_ms, "cannot connect to NATS; will retry");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Relays forever, while this process holds the `relay` role ([`AnyStore::try_lead`]: a
/// PostgreSQL advisory lock; the embedded store's one process always holds it). Failures are
/// logged and retried with backoff; the role is checked before every round.
pub async fn run_as_leader(store: AnyStore, client: Client, config: RelayConfig) {
    let mut relay = Relay::new(client, store.events(), config);
    let mut leadership: Option<Leadership> = None;
    let mut pause = None;
    loop {
        if let Some(held) = leadership.as_mut()
            && !held.holds().await
        {
            tracing::warn!("relay role lost; trying to take it again");
            leadership = None;
        }
        if leadership.is_none() {
            match store.try_lead("relay").await {
                Ok(Some(l)) => {
                    tracing::info!(stream = %relay.config().stream, "this process runs the relay");
                    leadership = Some(l);
                    // Another process may have relayed meanwhile.
                    relay.resync();
                }
                Ok(None) => {
                    tokio::time::sleep(FOLLOWER_WAIT).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take the relay role; will retry");
                    tokio::time::sleep(FOLLOWER_WAIT).await;
                    continue;
                }
            }
        }
        match relay.round().await {
            Ok(round) => {
                if pause.take().is_some() {
                    tracing::info!(position = %round.position, "relay resumed");
                }
                if round.published == 0 {
                    tokio::time::sleep(IDLE_POLL).await;
                } else {
                    let (published, position) = (round.published, round.position.0);
                    tracing::debug!(published, position, "relayed");
                }
            }
            Err(e) => {
                let wait = backoff(pause);
                pause = Some(wait);
                let retry_in_ms = millis(wait);
                tracing::warn!(error = %e, retry_in_ms, "relay round failed; will retry");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        assert_eq!(backoff(None), BACKOFF_MIN);
        assert_eq!(backoff(Some(BACKOFF_MIN)), BACKOFF_MIN * 2);
        assert_eq!(backoff(Some(BACKOFF_MAX)), BACKOFF_MAX);
    }

    #[test]
    fn a_status_without_a_client_is_disconnected() {
        assert_eq!(NatsStatus::new().as_str(), "disconnected");
    }
}
