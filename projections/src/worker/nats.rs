//! Workers fed by NATS JetStream: one durable pull consumer per projection, on the relay's
//! stream. A batch is acknowledged (ack-all, by its last message) only after its transaction
//! commits; a redelivery is dropped by the checkpoint, a lost message is read from the store.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use ledger::event::RecordedEvent;
use ledger::store::EventStore;

use super::{Applied, WorkerError, apply};
use crate::projection::Projection;
use crate::store::ReadStore;

/// Messages fetched per batch.
const BATCH: usize = 1_000;
/// How long a fetch waits for messages.
const FETCH_WAIT: Duration = Duration::from_millis(250);
const BACKOFF: Duration = Duration::from_secs(1);
/// Unacknowledged messages are redelivered after this.
const ACK_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum NatsWorkerError {
    #[error("JetStream: {0}")]
    JetStream(String),
    #[error(transparent)]
    Worker(#[from] WorkerError),
}

fn js(e: impl std::fmt::Display) -> NatsWorkerError {
    NatsWorkerError::JetStream(e.to_string())
}

/// The durable consumer name of a projection.
#[must_use]
pub fn consumer_name(projection: &str) -> String {
    format!("projection-{projection}")
}

/// One projection's worker on `stream`.
pub struct NatsWorker {
    read: ReadStore,
    events: Arc<dyn EventStore>,
    projection: Arc<dyn Projection>,
    consumer: consumer::Consumer<consumer::pull::Config>,
}

impl NatsWorker {
    /// Binds (creating if missing) the projection's durable consumer. A new consumer starts
    /// right after the projection's checkpoint (stream sequence = log position).
    ///
    /// # Errors
    /// JetStream's, or the read store's.
    pub async fn bind(
        client: async_nats::Client,
        stream: &str,
        read: ReadStore,
        events: Arc<dyn EventStore>,
        projection: Arc<dyn Projection>,
    ) -> Result<NatsWorker, NatsWorkerError> {
        let checkpoint = read
            .checkpoint(projection.name())
            .await
            .map_err(WorkerError::from)?;
        let stream = jetstream::new(client)
            .get_stream(stream)
            .await
            .map_err(js)?;
        let name = consumer_name(projection.name());
        let consumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::All,
                    ack_wait: ACK_WAIT,
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: u64::try_from(checkpoint + 1).unwrap_or(1),
                    },
                    max_ack_pending: 20_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(js)?;
        Ok(NatsWorker {
            read,
            events,
            projection,
            consumer,
        })
    }

    /// Fetches one batch, applies it and acknowledges it. `Applied::applied == 0`: nothing new.
    ///
    /// # Errors
    /// [`NatsWorkerError`]; the batch is not acknowledged and comes again.
    pub async fn batch(&mut self) -> Result<Applied, NatsWorkerError> {
        let mut messages = self
            .consumer
            .fetch()
            .max_messages(BATCH)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(js)?;
        let mut events = Vec::new();
        let mut last = None;
        let mut last_position = 0;
        while let Some(m) = messages.next().await {
            let m = m.map_err(js)?;
            match serde_json::from_slice::<RecordedEvent>(&m.payload) {
                // Published as stored: readers get the newest shape, as from the store.
                Ok(e) => {
                    last_position = last_position.max(e.position.0);
                    events.push(self.events.upcasters().apply(e));
                }
                // Not an event of ours: leave it; the position, if any, is read from the store.
                Err(e) => {
                    tracing::warn!(subject = %m.subject, error = %e, "unreadable message");
                    m.ack_with(AckKind::Term).await.map_err(js)?;
                }
            }
            last = Some(m);
        }
        let applied = apply(
            &self.read,
            self.events.as_ref(),
            self.projection.as_ref(),
            &events,
        )
        .await?;
        // Acknowledged (all, by the last) only when everything delivered is applied; otherwise
        // it comes again after the ack wait.
        if let Some(m) = last.filter(|_| applied.checkpoint >= last_position) {
            // Acknowledged with the server's confirmation: once `batch` returns, the batch is
            // off the consumer (an unconfirmed ack lost would only mean a redelivery, skipped).
            m.double_ack().await.map_err(js)?;
        }
        Ok(applied)
    }

    /// Runs batches forever; failures are logged and retried after a pause.
    pub async fn run(mut self) {
        loop {
            if let Err(e) = self.batch().await {
                tracing::warn!(
                    projection = self.projection.name(),
                    error = %e,
                    "projection batch failed; will retry"
                );
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}
