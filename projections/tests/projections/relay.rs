//! The relay against a real NATS server with JetStream (`NATS_URL`, default
//! `nats://127.0.0.1:4222`; `.ci/run` starts one) and a real event store (a fresh SQLite file per
//! test). Each test uses a stream name and subject prefix of its own, and deletes the stream at
//! the end, so tests run in parallel on one server.

use std::path::PathBuf;
use std::sync::Arc;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType, Stream};
use async_nats::jetstream::{self, Context};
use chrono::{TimeZone, Utc};
use ledger::event::{AppendRequest, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId};
use ledger::store::sqlite::SqliteStore;
use ledger::store::{EventStore, WriterConfig};
use ledger::upcast::Upcasters;
use projections::relay::{POSITION_HEADER, Relay, RelayConfig};
use serde_json::{Value, json};

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Fixture {
    store: Arc<dyn EventStore>,
    client: async_nats::Client,
    js: Context,
    config: RelayConfig,
    _dir: TempDir,
}

impl Fixture {
    async fn start() -> Fixture {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("kb-relay-{unique}"));
        std::fs::create_dir_all(&dir).expect("create the test directory");
        let dir = TempDir(dir);
        let store = SqliteStore::open_file(
            &dir.0.join("billing.db"),
            WriterConfig::default(),
            Upcasters::new(),
        )
        .await
        .expect("open the SQLite test file");
        store.migrate().await.expect("migrate the SQLite test file");
        let url = nats_url();
        let client = async_nats::connect(&url).await.unwrap_or_else(|e| {
            panic!("NATS with JetStream must run at {url} (.ci/run starts it): {e}")
        });
        Fixture {
            store: Arc::new(store),
            js: jetstream::new(client.clone()),
            client,
            config: RelayConfig::named(
                format!("TEST_RELAY_{unique}"),
                format!("test.{unique}.events"),
            ),
            _dir: dir,
        }
    }

    fn relay(&self) -> Relay {
        Relay::new(self.client.clone(), self.store.clone(), self.config.clone())
    }

    /// Appends `n` events over several streams of three categories, a few per request.
    async fn append(&self, n: usize) {
        const KINDS: [(&str, &str); 3] = [
            ("charge", "ChargeSucceeded"),
            ("customer", "CustomerCreated"),
            ("invoice", "InvoiceFinalized"),
        ];
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut requests = Vec::new();
        let (mut i, mut r) = (0, 0);
        while i < n {
            let (category, event_type) = KINDS[r % KINDS.len()];
            let stream = StreamId::new(format!("{category}-t{}", r % 7)).unwrap();
            let count = (n - i).min(1 + r % 4);
            r += 1;
            let events = (i..i + count)
                .map(|k| NewEvent::new(event_type, json!({ "i": k }), at))
                .collect();
            requests.push(AppendRequest::new(stream, ExpectedVersion::Any, events));
            i += count;
        }
        for result in self.store.append_many(requests).await {
            result.expect("append");
        }
    }

    async fn log(&self) -> Vec<RecordedEvent> {
        self.store
            .read_page_raw(Position::START, 10_000)
            .await
            .expect("read the log")
    }

    async fn stream(&self) -> Stream {
        self.js
            .get_stream(&self.config.stream)
            .await
            .expect("the relay created the stream")
    }

    /// Every message of the stream, in stream order.
    async fn messages(&self) -> Vec<async_nats::jetstream::message::StreamMessage> {
        let mut stream = self.stream().await;
        let state = stream.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            if state.messages == 0 {
                break;
            }
            out.push(stream.get_raw_message(seq).await.expect("read a message"));
        }
        out
    }

    /// Checks that the stream holds exactly the log, in order, as the relay describes it.
    async fn assert_stream_is_the_log(&self) {
        let log = self.log().await;
        let messages = self.messages().await;
        assert_eq!(messages.len(), log.len(), "one message per event");
        for (event, message) in log.iter().zip(&messages) {
            assert_eq!(
                message.subject.as_str(),
                format!(
                    "{}.{}.{}",
                    self.config.subject_prefix,
                    event.stream_id.category(),
                    event.event_type
                )
            );
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default()
            };
            assert_eq!(header("Nats-Msg-Id"), event.event_id.to_string());
            assert_eq!(header(POSITION_HEADER), event.position.0.to_string());
            let body: Value = serde_json::from_slice(&message.payload).expect("JSON body");
            assert_eq!(body, serde_json::to_value(event).unwrap());
        }
    }

    async fn delete_stream(&self) {
        self.js
            .delete_stream(&self.config.stream)
            .await
            .expect("delete the test stream");
    }
}

impl Drop for Fixture {
    /// A test that failed before deleting its stream: delete it anyway (on a runtime of its own,
    /// since the test's may be gone), so failed runs leave nothing on the shared server.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // A connection of its own: this client's task runs on the test's runtime, blocked here.
        let (url, name) = (nats_url(), self.config.stream.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let deleting = async {
                    let client = async_nats::connect(url).await.ok()?;
                    jetstream::new(client).delete_stream(name).await.ok()
                };
                tokio::time::timeout(std::time::Duration::from_secs(5), deleting)
                    .await
                    .ok()
                    .flatten()
            })
        })
        .join();
    }
}

#[tokio::test]
async fn relays_the_log_in_order_and_a_restart_relays_nothing_twice() {
    let f = Fixture::start().await;
    f.append(250).await;

    // (1) From an empty (missing) stream to the head of the log.
    let mut relay = f.relay();
    assert_eq!(relay.resume_position().await.unwrap(), Position::START);
    assert_eq!(relay.catch_up().await.unwrap(), Position(250));
    let info = f.stream().await.cached_info().clone();
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(
        info.config.subjects,
        vec![format!("{}.>", f.config.subject_prefix)]
    );
    f.assert_stream_is_the_log().await;
    let log = f.log().await;
    assert!(
        log.iter().any(|e| e.stream_id.category() == "charge")
            && log.iter().any(|e| e.stream_id.category() == "invoice"),
        "several categories"
    );
    let body: Value = serde_json::from_slice(&f.messages().await[0].payload).unwrap();
    for field in [
        "position",
        "event_id",
        "stream_id",
        "stream_version",
        "event_type",
        "schema_version",
        "payload",
        "metadata",
        "occurred_at",
        "recorded_at",
        "prev_hash",
        "hash",
    ] {
        assert!(body.get(field).is_some(), "the body has {field}: {body}");
    }
    assert_eq!(body["hash"].as_str().map(str::len), Some(64), "hex hash");
    drop(relay);

    // (2) A new instance resumes from the stream's last message: nothing twice.
    let mut restarted = f.relay();
    assert_eq!(restarted.resume_position().await.unwrap(), Position(250));
    let round = restarted.round().await.unwrap();
    assert_eq!(round.published, 0);
    assert_eq!(f.messages().await.len(), 250);
    f.append(10).await;
    assert_eq!(restarted.catch_up().await.unwrap(), Position(260));
    f.assert_stream_is_the_log().await;

    f.delete_stream().await;
}

#[tokio::test]
async fn jetstream_drops_an_event_published_again() {
    let f = Fixture::start().await;
    f.append(20).await;
    let mut relay = f.relay();
    relay.catch_up().await.unwrap();
    let event = f.log().await.swap_remove(4);

    // (3) The same Nats-Msg-Id again, as a relay that lost an ack would send it.
    let ack =
        f.js.send_publish(
            f.config.subject(&event),
            PublishMessage::build()
                .payload(serde_json::to_vec(&event).unwrap().into())
                .message_id(event.event_id.to_string())
                .header(POSITION_HEADER, event.position.0.to_string()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ack.duplicate, "JetStream must deduplicate by Nats-Msg-Id");
    assert_eq!(ack.sequence, 5, "the sequence of the first copy");
    assert_eq!(f.messages().await.len(), 20);
    assert_eq!(relay.round().await.unwrap().published, 0);
    f.assert_stream_is_the_log().await;

    f.delete_stream().await;
}

#[tokio::test]
async fn two_relays_at_once_keep_the_stream_a_copy_of_the_log() {
    let f = Fixture::start().await;
    let mut config = f.config.clone();
    config.page_size = 7;
    config.ack_window = 3;
    let mut a = Relay::new(f.client.clone(), f.store.clone(), config.clone());
    let mut b = Relay::new(f.client.clone(), f.store.clone(), config);
    assert_eq!(a.resume_position().await.unwrap(), Position::START);
    assert_eq!(b.resume_position().await.unwrap(), Position::START);
    f.append(50).await;
    assert_eq!(a.catch_up().await.unwrap(), Position(50));
    // B still believes the stream is empty: its publishes are refused, then it reads the stream.
    assert!(b.round().await.is_err());
    assert_eq!(b.catch_up().await.unwrap(), Position(50));
    f.assert_stream_is_the_log().await;

    // Both at once (a leader that lost its lock and the new one): racing, never interleaving.
    f.append(60).await;
    let (pa, pb) = tokio::join!(
        catch_up_despite_races(&mut a),
        catch_up_despite_races(&mut b)
    );
    assert_eq!((pa, pb), (Position(110), Position(110)));
    f.assert_stream_is_the_log().await;

    f.delete_stream().await;
}

#[tokio::test]
async fn a_refused_publish_stops_the_round_and_nothing_after_it_is_stored() {
    let f = Fixture::start().await;
    // A stream that refuses large messages (created before the relay, which keeps it as is).
    let config = StreamConfig {
        name: f.config.stream.clone(),
        subjects: vec![format!("{}.>", f.config.subject_prefix)],
        max_message_size: 4_000,
        ..StreamConfig::default()
    };
    f.js.create_stream(config.clone()).await.unwrap();
    f.append(20).await;
    let at = Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap();
    let big = NewEvent::new("DocumentAttached", json!({ "blob": "x".repeat(5_000) }), at);
    let stream = StreamId::new("document-big").unwrap();
    f.store
        .append(AppendRequest::new(stream, ExpectedVersion::Any, vec![big]))
        .await
        .unwrap();
    f.append(20).await;

    // Position 21 is refused; 22..41 were already in flight behind it (one window) and must be
    // refused too, or the stream would hold 22 without 21 and a restart would skip 21.
    let mut relay = f.relay();
    let error = relay.round().await.expect_err("position 21 is refused");
    assert!(error.to_string().contains("21"), "{error}");
    assert_eq!(f.messages().await.len(), 20);
    assert_eq!(f.relay().resume_position().await.unwrap(), Position(20));
    assert!(relay.catch_up().await.is_err(), "still refused");
    assert_eq!(f.messages().await.len(), 20);

    // Once the stream takes it, the relay goes on from 21.
    f.js.update_stream(StreamConfig {
        max_message_size: -1,
        ..config
    })
    .await
    .unwrap();
    assert_eq!(relay.catch_up().await.unwrap(), Position(41));
    f.assert_stream_is_the_log().await;

    f.delete_stream().await;
}

/// Rounds until caught up, going on after refused publishes (another relay got there first).
async fn catch_up_despite_races(relay: &mut Relay) -> Position {
    for _ in 0..100 {
        if let Ok(p) = relay.catch_up().await {
            return p;
        }
    }
    panic!("a relay never caught up");
}

#[tokio::test]
async fn a_stream_of_another_store_is_refused_not_continued() {
    let f = Fixture::start().await;
    f.append(20).await;
    assert_eq!(f.relay().catch_up().await.unwrap(), Position(20));
    // Another store (another database, or this one restored from an older backup) pointed at
    // the same stream: its events at positions 1..20 are not the ones the stream holds.
    let other = Fixture::start().await;
    other.append(30).await;
    let mut wrong = Relay::new(other.client.clone(), other.store.clone(), f.config.clone());
    let refused = wrong.resume_position().await;
    assert!(
        matches!(
            refused,
            Err(projections::relay::RelayError::NotThisStore { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(f.messages().await.len(), 20, "nothing relayed into it");
    f.delete_stream().await;
}
