//! The relay: tails the event store in position order and publishes each event to NATS
//! JetStream (DESIGN.md "Projections", fan-out in production).
//!
//! - One message per event, on `<prefix>.<category>.<EventType>` (default prefix
//!   `billing.events`), in stream `BILLING_EVENTS` (created with file storage if missing).
//! - Headers: `Nats-Msg-Id` = the event id (JetStream drops a second copy within its duplicate
//!   window), `Billing-Position` = the event's position.
//! - Body: the [`RecordedEvent`] as JSON, as stored (not upcast), hashes in hex.
//!
//! **Where it resumes** is read from JetStream itself: the `Billing-Position` of the stream's last
//! message (an empty stream: position 0). The relay keeps no checkpoint of its own, so it can never
//! be ahead of what JetStream holds.
//!
//! **The stream holds a contiguous prefix of the log.** Publishes are pipelined (up to
//! [`RelayConfig::ack_window`] in flight, acks awaited in order), and each carries
//! `Nats-Expected-Last-Sequence`: JetStream stores it only right after the message before it. If
//! one publish fails, every later one of the window is refused too, so the stream never holds
//! position `n + 1` without `n`, and "the last message" is a safe place to resume from, even after
//! a crash. On any error the round stops and the next one first reads the stream again. A second
//! relay that runs by mistake (a leader that lost its lock but not its process) is fenced the same
//! way: its publishes are either duplicates or refused.

use std::collections::VecDeque;
use std::sync::Arc;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, LastRawMessageErrorKind, StorageType};
use async_nats::jetstream::{self, Context};
use ledger::event::{Position, RecordedEvent};
use ledger::store::{EventStore, StoreError};

mod lead;

pub use lead::{NatsStatus, connect, run_as_leader};

/// The JetStream stream the relay publishes to, by default.
pub const DEFAULT_STREAM: &str = "BILLING_EVENTS";
/// The subject prefix, by default: subjects are `billing.events.<category>.<EventType>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "billing.events";
/// The header that carries the event's position.
pub const POSITION_HEADER: &str = "Billing-Position";

/// Where and how the relay publishes.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The JetStream stream's name (default `BILLING_EVENTS`).
    pub stream: String,
    /// Subjects are `<subject_prefix>.<category>.<EventType>`; the stream takes
    /// `<subject_prefix>.>` (default `billing.events`).
    pub subject_prefix: String,
    /// Events read from the store at a time (one round).
    pub page_size: u32,
    /// Publishes in flight before the oldest ack is awaited.
    pub ack_window: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            stream: DEFAULT_STREAM.to_string(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_string(),
            page_size: 500,
            ack_window: 128,
        }
    }
}

impl RelayConfig {
    /// The defaults with another stream name and subject prefix (tests use unique ones).
    pub fn named(stream: impl Into<String>, subject_prefix: impl Into<String>) -> Self {
        RelayConfig {
            stream: stream.into(),
            subject_prefix: subject_prefix.into(),
            ..RelayConfig::default()
        }
    }

    /// The subject an event is published on: `<prefix>.<category>.<EventType>`.
    pub fn subject(&self, event: &RecordedEvent) -> String {
        format!(
            "{}.{}.{}",
            self.subject_prefix,
            subject_token(event.stream_id.category()),
            subject_token(&event.event_type)
        )
    }
}

/// One subject token: `.`, `*`, `>` and whitespace (which would split or widen a subject) become
/// `_`; an empty name becomes `_`.
fn subject_token(name: &str) -> String {
    if name.is_empty() {
        return "_".to_string();
    }
    name.chars()
        .map(|c| {
            if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Why a round stopped. Nothing past the last acknowledged event counts as relayed; the next
/// round starts again from what the stream holds.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("JetStream stream {stream}: {message}")]
    Stream { stream: String, message: String },
    #[error("JetStream publish of position {position}: {message}")]
    Publish { position: Position, message: String },
    #[error(
        "the last message of stream {stream} (sequence {sequence}) has no valid \
         Billing-Position header"
    )]
    ForeignMessage { stream: String, sequence: u64 },
    #[error("the log has a gap: expected position {expected}, read {found}")]
    Gap { expected: Position, found: Position },
    #[error(
        "stream {stream} ends at position {position} with an event this store does not hold there          (another database's stream, or a restored one): refusing to relay into it"
    )]
    NotThisStore { stream: String, position: Position },
}

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Round {
    /// Events acknowledged by JetStream in this round (0: caught up).
    pub published: usize,
    /// The position of the last event the stream holds after the round.
    pub position: Position,
}

/// Where the stream ends: the last event it holds and the stream sequence after it.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    position: Position,
    sequence: u64,
}

/// Publishes the log to JetStream. Run one at a time per stream (see [`run_as_leader`]); a second
/// one does no harm but wastes work.
pub struct Relay {
    store: Arc<dyn EventStore>,
    js: Context,
    config: RelayConfig,
    /// `None`: read the stream before the next round (at start and after any error).
    cursor: Option<Cursor>,
}

impl Relay {
    pub fn new(
        client: async_nats::Client,
        store: Arc<dyn EventStore>,
        config: RelayConfig,
    ) -> Self {
        Relay {
            store,
            js: jetstream::new(client),
            config,
            cursor: None,
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Forget where the stream ends: the next round reads it again (after taking the relay role,
    /// another process may have published meanwhile).
    pub fn resync(&mut self) {
        self.cursor = None;
    }

    /// The position of the last event the stream holds (0 for an empty stream), creating the
    /// stream (file storage, subjects `<prefix>.>`) if it is missing.
    ///
    /// # Errors
    /// JetStream cannot be reached, or the last message is not one of the relay's.
    pub async fn resume_position(&mut self) -> Result<Position, RelayError> {
        let cursor = self.read_stream_end().await?;
        self.cursor = Some(cursor);
        Ok(cursor.position)
    }

    async fn read_stream_end(&self) -> Result<Cursor, RelayError> {
        let name = &self.config.stream;
        let stream_err = |message: String| RelayError::Stream {
            stream: name.clone(),
            message,
        };
        let stream = self
            .js
            .get_or_create_stream(StreamConfig {
                name: name.clone(),
                subjects: vec![format!("{}.>", self.config.subject_prefix)],
                storage: StorageType::File,
                ..StreamConfig::default()
            })
            .await
            .map_err(|e| stream_err(e.to_string()))?;
        let state = &stream.cached_info().state;
        let sequence = state.last_sequence;
        if state.messages == 0 {
            return Ok(Cursor {
                position: Position::START,
                sequence,
            });
        }
        let last = match stream.get_raw_message(sequence).await {
            Ok(m) => m,
            // The last message was deleted on its own: the last one left on our subjects.
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => stream
                .get_last_raw_message_by_subject(&format!("{}.>", self.config.subject_prefix))
                .await
                .map_err(|e| stream_err(format!("reading the last message: {e}")))?,
            Err(e) => return Err(stream_err(format!("reading message {sequence}: {e}"))),
        };
        let position = last
            .headers
            .get(POSITION_HEADER)
            .and_then(|v| v.as_str().parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .ok_or_else(|| RelayError::ForeignMessage {
                stream: name.clone(),
                sequence: last.sequence,
            })?;
        // The stream must be this store's: its last event is the store's event at that position.
        let id = last
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_string());
        let here = self
            .store
            .read_page_raw(Position(position - 1), 1)
            .await?
            .into_iter()
            .next()
            .filter(|e| e.position.0 == position)
            .map(|e| e.event_id.to_string());
        if here.is_none() || here != id {
            return Err(RelayError::NotThisStore {
                stream: name.clone(),
                position: Position(position),
            });
        }
        Ok(Cursor {
            position: Position(position),
            sequence,
        })
    }

    /// Publishes up to one page of events after the last one the stream holds, and waits for
    /// their acks. `published == 0`: caught up with the store's head.
    ///
    /// # Errors
    /// The store or JetStream failed: the events acknowledged before the failure stay relayed,
    /// the next round reads the stream again and goes on from there.
    pub async fn round(&mut self) -> Result<Round, RelayError> {
        let cursor = match self.cursor {
            Some(c) => c,
            None => {
                self.resume_position().await?;
                self.cursor.expect("set by resume_position")
            }
        };
        let page = self
            .store
            .read_page_raw(cursor.position, self.config.page_size.max(1))
            .await?;
        if page.is_empty() {
            return Ok(Round {
                published: 0,
                position: cursor.position,
            });
        }
        // Until the round ends cleanly, the next one starts by reading the stream.
        self.cursor = None;
        let (end, outcome) = self.publish_page(cursor, &page).await;
        self.cursor = outcome.is_ok().then_some(end);
        outcome?;
        Ok(Round {
            published: usize::try_from(end.position.0 - cursor.position.0).unwrap_or(0),
            position: end.position,
        })
    }

    /// Publishes `page` (which must follow `start`) with at most `ack_window` acks pending;
    /// returns how far the acknowledged prefix got, and the first error.
    async fn publish_page(
        &self,
        start: Cursor,
        page: &[RecordedEvent],
    ) -> (Cursor, Result<(), RelayError>) {
        let window = self.config.ack_window.max(1);
        let mut acked = start;
        let mut pending: VecDeque<(Position, u64, PublishAckFuture)> = VecDeque::new();
        let mut sent = start;
        for event in page {
            let expected = sent.position.next();
            let sending = if event.position == expected {
                self.send(event, sent.sequence).await
            } else {
                Err(RelayError::Gap {
                    expected,
                    found: event.position,
                })
            };
            match sending {
                Ok(ack) => pending.push_back((event.position, sent.sequence + 1, ack)),
                Err(e) => {
                    // What was sent before still counts once acknowledged.
                    let settled = self.settle(&mut acked, pending).await;
                    return (acked, settled.and(Err(e)));
                }
            }
            sent = Cursor {
                position: event.position,
                sequence: sent.sequence + 1,
            };
            if pending.len() >= window {
                let oldest = pending.drain(..1).collect();
                if let Err(e) = self.settle(&mut acked, oldest).await {
                    return (acked, Err(e));
                }
            }
        }
        let outcome = self.settle(&mut acked, pending).await;
        (acked, outcome)
    }

    /// Sends one event; the ack is awaited later.
    async fn send(
        &self,
        event: &RecordedEvent,
        last_sequence: u64,
    ) -> Result<PublishAckFuture, RelayError> {
        let body = serde_json::to_vec(event).map_err(|e| RelayError::Publish {
            position: event.position,
            message: format!("encoding the event: {e}"),
        })?;
        let message = PublishMessage::build()
            .payload(body.into())
            .message_id(event.event_id.to_string())
            .header(POSITION_HEADER, event.position.0.to_string())
            .expected_last_sequence(last_sequence);
        self.js
            .send_publish(self.config.subject(event), message)
            .await
            .map_err(|e| RelayError::Publish {
                position: event.position,
                message: e.to_string(),
            })
    }

    /// Awaits acks in order, moving `acked` past each; stops at the first failure.
    async fn settle(
        &self,
        acked: &mut Cursor,
        pending: VecDeque<(Position, u64, PublishAckFuture)>,
    ) -> Result<(), RelayError> {
        for (position, sequence, ack) in pending {
            let ack = ack.await.map_err(|e| RelayError::Publish {
                position,
                message: e.to_string(),
            })?;
            if ack.duplicate || ack.sequence != sequence {
                // The stream already held this event: someone else is relaying too, or a lost
                // ack. Read the stream again rather than guess.
                return Err(RelayError::Publish {
                    position,
                    message: format!(
                        "stream {} already held it (sequence {}, duplicate: {}); \
                         reading the stream again",
                        ack.stream, ack.sequence, ack.duplicate
                    ),
                });
            }
            *acked = Cursor { position, sequence };
        }
        Ok(())
    }

    /// Runs rounds until the stream holds every event of the store (as of the last page read).
    ///
    /// # Errors
    /// As [`Relay::round`].
    pub async fn catch_up(&mut self) -> Result<Position, RelayError> {
        loop {
            let round = self.round().await?;
            if round.published == 0 {
                return Ok(round.position);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_tokens_never_split_or_widen_a_subject() {
        assert_eq!(subject_token("charge"), "charge");
        assert_eq!(subject_token("ChargeSucceeded"), "ChargeSucceeded");
        assert_eq!(subject_token("a.b"), "a_b");
        assert_eq!(subject_token("x*y>z w"), "x_y_z_w");
        assert_eq!(subject_token(""), "_");
    }
}
