//! The JetStream projection worker ([`NatsWorker`]) end to end: real event stores (SQLite files and
//! fresh PostgreSQL databases), the real relay, a real NATS server with JetStream (`NATS_URL`,
//! default `nats://127.0.0.1:4222`). Each store gets a stream and subject prefix of its own
//! (stream sequence = log position), deleted at the end, so tests run in parallel on one server.
//! What a worker builds is compared with what the in-process feed ([`LocalFeed`]) builds from
//! the same log into the replay tables of the same database.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{self, Consumer};
use async_nats::jetstream::{self, AckKind, Context};
use commands::charge::refund::{RefundEvent, RefundRequested, RefundSucceeded};
use commands::charge::{ChargeEvent, ChargeFailed, ChargeRequested, ChargeSucceeded};
use commands::stored::to_new_event;
use futures_util::StreamExt;
use ledger::event::{
    AppendRequest, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, StreamId,
};
use ledger::ids::{ChargeId, CustomerId, RefundId};
use ledger::money::Currency;
use ledger::store::sqlite::SqliteStore;
use ledger::store::{AnyStore, EventStore, WriterConfig, read_page};
use ledger::upcast::Upcasters;
use projections::projection::{Doc, JournalLine, Projection};
use projections::relay::{Relay, RelayConfig};
use projections::store::{NEXT, ReadStore};
use projections::worker::local::LocalFeed;
use projections::worker::nats::{NatsWorker, consumer_name};
use projections::worker::{Applied, apply};

use super::support::{KINDS, Kind, TestStore, at, charge, refund};

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

async fn connect() -> async_nats::Client {
    let url = nats_url();
    async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("NATS with JetStream must run at {url} (.ci/run starts it): {e}")
    })
}

fn projections() -> Vec<Arc<dyn Projection>> {
    projections::all()
}

fn refs(all: &[Arc<dyn Projection>]) -> Vec<&dyn Projection> {
    all.iter().map(|p| p.as_ref()).collect()
}

fn by_name(all: &[Arc<dyn Projection>], name: &str) -> Arc<dyn Projection> {
    all.iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no projection {name}"))
        .clone()
}

/// One test stream (and subject prefix) on the shared server, for one event store.
struct Nats {
    client: async_nats::Client,
    js: Context,
    config: RelayConfig,
}

impl Nats {
    async fn start() -> Nats {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let client = connect().await;
        Nats {
            js: jetstream::new(client.clone()),
            client,
            config: RelayConfig::named(
                format!("TEST_WORKER_{unique}"),
                format!("test.{unique}.worker"),
            ),
        }
    }

    fn relay(&self, events: &Arc<dyn EventStore>) -> Relay {
        Relay::new(self.client.clone(), events.clone(), self.config.clone())
    }

    /// Publishes the whole log; answers the head it reached.
    async fn relay_all(&self, events: &Arc<dyn EventStore>) -> i64 {
        let reached = self.relay(events).catch_up().await.expect("relay").0;
        assert_eq!(
            reached,
            head(events.as_ref()).await,
            "relayed up to the head"
        );
        reached
    }

    async fn bind(&self, s: &TestStore, projection: &Arc<dyn Projection>) -> NatsWorker {
        self.bind_with(self.client.clone(), s, projection).await
    }

    async fn bind_with(
        &self,
        client: async_nats::Client,
        s: &TestStore,
        projection: &Arc<dyn Projection>,
    ) -> NatsWorker {
        NatsWorker::bind(
            client,
            &self.config.stream,
            s.read.clone(),
            s.events.clone(),
            projection.clone(),
        )
        .await
        .expect("bind the worker")
    }

    /// The projection's durable consumer, as another process (a worker about to be killed)
    /// would use it.
    async fn consumer(&self, projection: &str) -> Consumer<consumer::pull::Config> {
        self.js
            .get_stream(&self.config.stream)
            .await
            .expect("the stream")
            .get_consumer(&consumer_name(projection))
            .await
            .expect("the projection's consumer")
    }

    async fn consumer_info(&self, projection: &str) -> consumer::Info {
        self.consumer(projection)
            .await
            .info()
            .await
            .expect("consumer info")
            .clone()
    }

    async fn delete_stream(&self) {
        self.js
            .delete_stream(&self.config.stream)
            .await
            .expect("delete the test stream");
    }
}

impl Drop for Nats {
    /// A test that failed before deleting its stream: delete it anyway, on a runtime and a
    /// connection of its own, so failed runs leave nothing on the shared server.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
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
                tokio::time::timeout(Duration::from_secs(5), deleting)
                    .await
                    .ok()
                    .flatten()
            })
        })
        .join();
    }
}

async fn head(events: &dyn EventStore) -> i64 {
    events.head().await.expect("head").position.0
}

async fn log_after(events: &dyn EventStore, after: i64) -> Vec<RecordedEvent> {
    read_page(events, Position(after), 10_000)
        .await
        .expect("read the log")
}

/// Charges in two currencies, some failed, some refunded, one `append` each (the helpers').
async fn some_money(events: &dyn EventStore, from_minute: u32, n: u32) {
    for i in 0..n {
        let (currency, amount) = if i % 3 == 0 {
            ("jpy", 500)
        } else {
            ("usd", 1_999)
        };
        let ok = i % 4 != 3;
        let id = charge(events, amount, currency, ok, at(from_minute + i)).await;
        if ok && i % 5 == 0 {
            refund(events, id, 100, at(from_minute + i + 1)).await;
        }
    }
}

/// `n` charges in one group commit (many pages of JetStream batches): each requested and
/// succeeded (every 7th failed), every 4th refunded in part.
async fn many_charges(events: &dyn EventStore, n: usize) {
    let when = at(500);
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        let id = ChargeId::new();
        let (currency, amount) = if i % 2 == 0 {
            ("eur", 1_000 + i as i64)
        } else {
            ("usd", 250)
        };
        let mut domain = vec![ChargeEvent::Requested(ChargeRequested {
            charge_id: id,
            amount,
            currency: Currency::parse(currency).unwrap(),
            customer_id: Some(CustomerId::new()),
            payment_method: "tok_visa".into(),
            description: None,
            gateway: "sandbox".into(),
            gateway_key: format!("charge-{id}"),
            gateway_customer: None,
            off_session: false,
            capture_later: false,
            request_fingerprint: None,
        })];
        if i % 7 == 6 {
            domain.push(ChargeEvent::Failed(ChargeFailed {
                charge_id: id,
                gateway_charge_id: None,
                failure_code: "card_declined".into(),
                failure_message: "declined".into(),
            }));
        } else {
            domain.push(ChargeEvent::Succeeded(ChargeSucceeded {
                charge_id: id,
                gateway_charge_id: format!("sb_{id}"),
            }));
            if i % 4 == 0 {
                let refund_id = RefundId::new();
                domain.push(ChargeEvent::Refund(RefundEvent::Requested(
                    RefundRequested {
                        charge_id: id,
                        refund_id,
                        amount: 100,
                        reason: None,
                        gateway_key: format!("refund-{refund_id}"),
                        request_fingerprint: None,
                    },
                )));
                domain.push(ChargeEvent::Refund(RefundEvent::Succeeded(
                    RefundSucceeded {
                        charge_id: id,
                        refund_id,
                        gateway_refund_id: format!("sbr_{refund_id}"),
                    },
                )));
            }
        }
        let new: Vec<NewEvent> = domain
            .iter()
            .map(|e| to_new_event(e, when, &Metadata::default()))
            .collect();
        requests.push(AppendRequest::new(
            StreamId::of("charge", &id).unwrap(),
            ExpectedVersion::NoStream,
            new,
        ));
    }
    for result in events.append_many(requests).await {
        result.expect("append");
    }
}

/// What several batches did, added up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    batches: usize,
    applied: usize,
    skipped: usize,
    filled: usize,
}

impl Totals {
    fn add(&mut self, a: Applied) {
        self.batches += 1;
        self.applied += a.applied;
        self.skipped += a.skipped;
        self.filled += a.filled;
    }

    fn plus(self, o: Totals) -> Totals {
        Totals {
            batches: self.batches + o.batches,
            applied: self.applied + o.applied,
            skipped: self.skipped + o.skipped,
            filled: self.filled + o.filled,
        }
    }

    /// Messages JetStream delivered (the applied ones that were not read from the store, and
    /// the dropped ones).
    fn delivered(self) -> usize {
        self.applied - self.filled + self.skipped
    }
}

/// Batches until the projection's checkpoint is `head` (bounded: a worker that stops
/// progressing fails the test instead of hanging it).
async fn drain(worker: &mut NatsWorker, read: &ReadStore, name: &str, head: i64) -> Totals {
    let mut totals = Totals::default();
    for _ in 0..60 {
        let checkpoint = read.checkpoint(name).await.expect("checkpoint");
        assert!(
            checkpoint <= head,
            "{name}: checkpoint {checkpoint} past the head {head}"
        );
        if checkpoint == head {
            return totals;
        }
        let a = worker.batch().await.expect("batch");
        assert!(a.checkpoint <= head, "{name}: {a:?}");
        totals.add(a);
    }
    panic!("{name} never reached {head}: {totals:?}");
}

/// The same log applied by the in-process feed into the replay tables (`rmnext_`) of the same
/// database.
async fn local_build(s: &TestStore, all: &[Arc<dyn Projection>]) -> ReadStore {
    let next = s.read.with_prefix(NEXT);
    next.drop_tables(&refs(all)).await.expect("drop");
    next.ensure(&refs(all)).await.expect("ensure next");
    LocalFeed::new(next.clone(), s.events.clone(), all.to_vec())
        .catch_up()
        .await
        .expect("local feed");
    next
}

/// Every document of every projection, every journal line and every checkpoint of `read`
/// equal those of `local`.
async fn assert_same_as(
    read: &ReadStore,
    local: &ReadStore,
    all: &[Arc<dyn Projection>],
    at: &str,
) {
    for p in all {
        let (got, want) = (
            read.all_docs(p.name()).await.expect("docs"),
            local.all_docs(p.name()).await.expect("local docs"),
        );
        if matches!(p.name(), "charges" | "journal") {
            assert!(!want.is_empty(), "{at}: {} has rows", p.name());
        }
        assert_eq!(got.len(), want.len(), "{at}: {} documents", p.name());
        assert_eq!(got, want, "{at}: {}", p.name());
        assert_eq!(
            read.checkpoint(p.name()).await.unwrap(),
            local.checkpoint(p.name()).await.unwrap(),
            "{at}: {} checkpoint",
            p.name()
        );
    }
    let (got, want) = (
        read.all_lines("journal").await.expect("lines"),
        local.all_lines("journal").await.expect("local lines"),
    );
    assert!(!want.is_empty(), "{at}: the journal has lines");
    assert_eq!(got, want, "{at}: journal lines");
}

/// Each (position, line) once, and debits equal credits per currency.
async fn assert_balanced_once(read: &ReadStore) -> Vec<JournalLine> {
    let lines = read.all_lines("journal").await.expect("lines");
    let keys: BTreeSet<(i64, i32)> = lines.iter().map(|l| (l.position, l.line)).collect();
    assert_eq!(keys.len(), lines.len(), "a journal line posted twice");
    let balance = read
        .trial_balance("journal", None)
        .await
        .expect("trial balance");
    let mut per_currency: BTreeMap<String, i64> = BTreeMap::new();
    for l in &balance {
        *per_currency.entry(l.currency.clone()).or_insert(0) += l.debit - l.credit;
    }
    assert!(!per_currency.is_empty());
    assert!(per_currency.values().all(|v| *v == 0), "{balance:?}");
    lines
}

/// What a projection holds: its documents and, for the journal, its lines and balance.
type Snapshot = Vec<(
    Vec<(String, Doc)>,
    Vec<JournalLine>,
    Vec<projections::store::TrialBalanceLine>,
)>;

async fn snapshot(read: &ReadStore, all: &[Arc<dyn Projection>]) -> Snapshot {
    let mut out = Vec::new();
    for p in all {
        let docs = read.all_docs(p.name()).await.expect("docs");
        let (lines, balance) = if p.name() == "journal" {
            (
                read.all_lines("journal").await.expect("lines"),
                read.trial_balance("journal", None).await.expect("balance"),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        out.push((docs, lines, balance));
    }
    out
}

/// Fetches up to `n` messages from `consumer` (without acknowledging any) and decodes them.
async fn fetch_unacked(
    consumer: &Consumer<consumer::pull::Config>,
    n: usize,
) -> (Vec<jetstream::Message>, Vec<RecordedEvent>) {
    let mut batch = consumer
        .fetch()
        .max_messages(n)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .expect("fetch");
    let mut messages = Vec::new();
    while let Some(m) = batch.next().await {
        messages.push(m.expect("a message"));
    }
    let events = messages
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).expect("an event"))
        .collect();
    (messages, events)
}

#[tokio::test]
async fn a_worker_fed_by_jetstream_builds_what_the_local_feed_builds() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let nats = Nats::start().await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        some_money(s.events.as_ref(), 0, 16).await;
        // More than two fetches' worth (1,000 messages each).
        many_charges(s.events.as_ref(), 900).await;
        some_money(s.events.as_ref(), 30, 8).await;
        let head = nats.relay_all(&s.events).await;
        assert!(head > 2_000, "{head}");

        for p in &all {
            let mut worker = nats.bind(&s, p).await;
            let t = drain(&mut worker, &s.read, p.name(), head).await;
            let at = format!("{kind:?} {}", p.name());
            // Every event came from JetStream, once: none read from the store, none dropped.
            assert_eq!(
                (t.applied, t.skipped, t.filled),
                (usize::try_from(head).unwrap(), 0, 0),
                "{at}: {t:?}"
            );
            assert!(
                t.batches >= 3,
                "{at}: at most 1,000 messages a batch: {t:?}"
            );
            // All of it acknowledged: nothing pending, nothing to come again.
            let info = nats.consumer_info(p.name()).await;
            assert_eq!(
                (
                    info.num_ack_pending,
                    info.num_pending,
                    info.ack_floor.stream_sequence
                ),
                (0, 0, u64::try_from(head).unwrap()),
                "{at}"
            );
            let idle = worker.batch().await.expect("batch");
            assert_eq!(
                idle,
                Applied {
                    checkpoint: head,
                    ..Applied::default()
                },
                "{at}"
            );
        }
        assert_balanced_once(&s.read).await;
        let local = local_build(&s, &all).await;
        assert_same_as(&s.read, &local, &all, &format!("{kind:?}")).await;
        nats.delete_stream().await;
    }
}

#[tokio::test]
async fn a_batch_committed_but_not_acknowledged_is_not_applied_twice() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let nats = Nats::start().await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        some_money(s.events.as_ref(), 0, 12).await;
        let first = nats.relay_all(&s.events).await;

        // (1) The consumers exist (at position 1) before the batch is committed without any
        // delivery or ack: JetStream then delivers every message already applied.
        let mut workers = Vec::new();
        for p in &all {
            workers.push(nats.bind(&s, p).await);
            let info = nats.consumer_info(p.name()).await;
            assert_eq!(info.num_pending, u64::try_from(first).unwrap());
        }
        let log = log_after(s.events.as_ref(), 0).await;
        for p in &all {
            let a = apply(&s.read, s.events.as_ref(), p.as_ref(), &log)
                .await
                .expect("apply");
            assert_eq!(a.checkpoint, first);
        }
        let before = snapshot(&s.read, &all).await;
        for (p, worker) in all.iter().zip(&mut workers) {
            let a = worker.batch().await.expect("batch");
            let at = format!("{kind:?} {} (1)", p.name());
            assert_eq!(
                (a.applied, a.skipped, a.filled, a.checkpoint),
                (0, log.len(), 0, first),
                "{at}"
            );
            // Dropped, yet acknowledged: nothing comes again.
            let info = nats.consumer_info(p.name()).await;
            assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{at}");
        }
        assert_eq!(snapshot(&s.read, &all).await, before, "{kind:?} (1)");

        // (2) A worker fetched a batch, committed it and died before its ack; JetStream
        // redelivers the batch (here at once, by a nak, rather than after the ack wait).
        some_money(s.events.as_ref(), 100, 10).await;
        let second = nats.relay_all(&s.events).await;
        let fresh = usize::try_from(second - first).unwrap();
        for p in &all {
            let dying = nats.consumer(p.name()).await;
            let (messages, events) = fetch_unacked(&dying, fresh).await;
            assert_eq!(events.len(), fresh, "{kind:?} {}", p.name());
            let a = apply(&s.read, s.events.as_ref(), p.as_ref(), &events)
                .await
                .expect("apply");
            assert_eq!((a.applied, a.checkpoint), (fresh, second));
            for m in messages {
                m.ack_with(AckKind::Nak(None)).await.expect("nak");
            }
        }
        let before = snapshot(&s.read, &all).await;
        for (p, worker) in all.iter().zip(&mut workers) {
            let a = worker.batch().await.expect("batch");
            let at = format!("{kind:?} {} (2)", p.name());
            assert_eq!(
                (a.applied, a.skipped, a.filled, a.checkpoint),
                (0, fresh, 0, second),
                "{at}"
            );
            let info = nats.consumer_info(p.name()).await;
            assert_eq!(info.num_redelivered, 0, "{at}: redeliveries acknowledged");
            assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{at}");
        }
        assert_eq!(snapshot(&s.read, &all).await, before, "{kind:?} (2)");

        // (3) A worker fetched a batch, committed only its first half and died without ack or
        // nak: its messages stay pending (for the ack wait, 30 s). Restarted workers bind the
        // same consumers; the next event relayed brings the rest in (read from the store).
        some_money(s.events.as_ref(), 200, 10).await;
        let third = nats.relay_all(&s.events).await;
        let fresh = usize::try_from(third - second).unwrap();
        let half = fresh / 2;
        for p in &all {
            let dying = nats.consumer(p.name()).await;
            let (_unacked, events) = fetch_unacked(&dying, fresh).await;
            assert_eq!(events.len(), fresh);
            apply(&s.read, s.events.as_ref(), p.as_ref(), &events[..half])
                .await
                .expect("apply");
        }
        drop(workers);
        charge(s.events.as_ref(), 4_200, "usd", true, at(300)).await;
        let last = nats.relay_all(&s.events).await;
        let late = usize::try_from(last - third).unwrap();
        for p in &all {
            let mut restarted = nats.bind(&s, p).await;
            let t = drain(&mut restarted, &s.read, p.name(), last).await;
            let at = format!("{kind:?} {} (3)", p.name());
            assert_eq!(
                (t.applied, t.skipped, t.filled),
                (fresh - half + late, 0, fresh - half),
                "{at}: {t:?}"
            );
            // The ack of the last message covered the dead worker's pending ones (ack-all).
            let info = nats.consumer_info(p.name()).await;
            assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{at}");
        }
        assert_balanced_once(&s.read).await;
        let local = local_build(&s, &all).await;
        assert_same_as(&s.read, &local, &all, &format!("{kind:?}")).await;
        nats.delete_stream().await;
    }
}

#[tokio::test]
async fn events_appended_while_nats_is_unreachable_are_all_applied_later() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let nats = Nats::start().await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        some_money(s.events.as_ref(), 0, 10).await;
        let first = nats.relay_all(&s.events).await;
        let mut workers = Vec::new();
        for p in &all {
            let mut worker = nats.bind(&s, p).await;
            drain(&mut worker, &s.read, p.name(), first).await;
            workers.push(worker);
        }

        // NATS is unreachable: the relay publishes nothing (its round fails or never ends).
        some_money(s.events.as_ref(), 100, 8).await;
        let down = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1")
            .await
            .expect("a client that is not connected");
        let mut cut_off = Relay::new(down, s.events.clone(), nats.config.clone());
        let round = tokio::time::timeout(Duration::from_millis(500), cut_off.round()).await;
        assert!(
            !matches!(round, Ok(Ok(ref r)) if r.published > 0),
            "{kind:?}: published without a server: {round:?}"
        );
        drop(cut_off);
        // Workers see nothing new, and apply nothing on their own.
        for (p, worker) in all.iter().zip(&mut workers) {
            let a = worker.batch().await.expect("batch");
            assert_eq!(
                (a.applied, a.checkpoint),
                (0, first),
                "{kind:?} {}",
                p.name()
            );
        }
        some_money(s.events.as_ref(), 200, 8).await;
        let last = head(s.events.as_ref()).await;
        assert!(last > first);

        // NATS is back: the relay goes on from the stream's last message, the workers apply it
        // all, every event from JetStream, once.
        let mut relay = nats.relay(&s.events);
        assert_eq!(relay.resume_position().await.unwrap(), Position(first));
        assert_eq!(relay.catch_up().await.unwrap(), Position(last));
        for (p, worker) in all.iter().zip(&mut workers) {
            let t = drain(worker, &s.read, p.name(), last).await;
            assert_eq!(
                (t.applied, t.skipped, t.filled),
                (usize::try_from(last - first).unwrap(), 0, 0),
                "{kind:?} {}: {t:?}",
                p.name()
            );
        }
        assert_balanced_once(&s.read).await;
        let local = local_build(&s, &all).await;
        assert_same_as(&s.read, &local, &all, &format!("{kind:?}")).await;
        nats.delete_stream().await;
    }
}

#[tokio::test]
async fn a_message_missing_from_the_stream_is_read_from_the_store() {
    let s = TestStore::open(Kind::Postgres).await;
    let nats = Nats::start().await;
    let all = projections();
    s.read.ensure(&refs(&all)).await.expect("ensure");
    some_money(s.events.as_ref(), 0, 12).await;
    let last = nats.relay_all(&s.events).await;
    // Two messages lost from the stream (stream sequence = position), not the last one.
    let stream = nats.js.get_stream(&nats.config.stream).await.unwrap();
    for sequence in [3u64, 10] {
        assert!(
            stream
                .delete_message(sequence)
                .await
                .expect("delete a message")
        );
    }
    for p in &all {
        let mut worker = nats.bind(&s, p).await;
        let t = drain(&mut worker, &s.read, p.name(), last).await;
        assert_eq!(
            (t.applied, t.skipped, t.filled),
            (usize::try_from(last).unwrap(), 0, 2),
            "{}: {t:?}",
            p.name()
        );
    }
    assert_balanced_once(&s.read).await;
    let local = local_build(&s, &all).await;
    assert_same_as(&s.read, &local, &all, "Postgres").await;
    nats.delete_stream().await;
}

/// Batches until the projection's checkpoint is `head`, racing another worker of the same
/// consumer.
async fn race(mut worker: NatsWorker, read: ReadStore, name: &'static str, head: i64) -> Totals {
    drain(&mut worker, &read, name, head).await
}

#[tokio::test]
async fn two_workers_of_one_consumer_apply_each_event_once() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let nats = Nats::start().await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        some_money(s.events.as_ref(), 0, 12).await;
        many_charges(s.events.as_ref(), 1_300).await;
        let head = nats.relay_all(&s.events).await;
        assert!(head > 3_000, "{head}");

        // Two processes each: two connections, one durable consumer per projection.
        let (charges, journal) = (by_name(&all, "charges"), by_name(&all, "journal"));
        let (one, two) = (connect().await, connect().await);
        let c1 = nats.bind_with(one.clone(), &s, &charges).await;
        let c2 = nats.bind_with(two.clone(), &s, &charges).await;
        let j1 = nats.bind_with(one, &s, &journal).await;
        let j2 = nats.bind_with(two, &s, &journal).await;
        let (tc1, tc2, tj1, tj2) = tokio::join!(
            race(c1, s.read.clone(), "charges", head),
            race(c2, s.read.clone(), "charges", head),
            race(j1, s.read.clone(), "journal", head),
            race(j2, s.read.clone(), "journal", head),
        );
        let n = usize::try_from(head).unwrap();
        // They raced: both workers of a consumer were delivered messages (the first fetches of
        // all four are in flight before any batch is applied).
        assert!(
            [(tc1, tc2), (tj1, tj2)]
                .iter()
                .any(|(a, b)| a.delivered() > 0 && b.delivered() > 0),
            "{kind:?}: no race: {tc1:?} {tc2:?} {tj1:?} {tj2:?}"
        );
        for (name, a, b) in [("charges", tc1, tc2), ("journal", tj1, tj2)] {
            let at = format!("{kind:?} {name}: {a:?} {b:?}");
            let t = a.plus(b);
            // Each event applied once, by one of them (delivered or read from the store).
            assert_eq!(t.applied, n, "{at}");
            // Each message delivered once, to one of them (no redelivery within the ack wait).
            assert_eq!(t.delivered(), n, "{at}");
            assert_eq!(s.read.checkpoint(name).await.unwrap(), head, "{at}");
            let info = nats.consumer_info(name).await;
            assert_eq!((info.num_ack_pending, info.num_pending), (0, 0), "{at}");
        }
        let lines = assert_balanced_once(&s.read).await;
        let local = local_build(&s, &all).await;
        assert_eq!(
            lines,
            local.all_lines("journal").await.unwrap(),
            "{kind:?} journal lines"
        );
        for name in ["charges", "journal"] {
            assert_eq!(
                s.read.all_docs(name).await.unwrap(),
                local.all_docs(name).await.unwrap(),
                "{kind:?} {name}"
            );
        }
        nats.delete_stream().await;
    }
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The relay publishes events as stored (not upcast); the worker upcasts what it decodes, as the
/// local feed, replay and its own gap fill do (they read through `read_page`), so a read model
/// fed by JetStream equals the one the local feed or a replay builds.
#[tokio::test]
async fn a_worker_fed_by_jetstream_applies_events_upcast_as_the_local_feed_does() {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let dir = TempDir(std::env::temp_dir().join(format!("kb-proj-upcast-{unique}")));
    std::fs::create_dir_all(&dir.0).expect("create the test directory");
    // Version 2 of ChargeSucceeded, say, renamed the gateway's ids: version 1 reads as the new.
    let upcasters = Upcasters::new().register("ChargeSucceeded", 1, |mut payload| {
        payload["gateway_charge_id"] = "upcast".into();
        payload
    });
    let sqlite = SqliteStore::open_file(
        &dir.0.join("billing.db"),
        WriterConfig::default(),
        upcasters,
    )
    .await
    .expect("open SQLite");
    let any = AnyStore::Sqlite(sqlite);
    any.migrate().await.expect("migrate");
    let (events, read) = (any.events(), ReadStore::live(&any));
    let all = projections();
    read.ensure(&refs(&all)).await.expect("ensure");
    some_money(events.as_ref(), 0, 6).await;
    let nats = Nats::start().await;
    let head = nats.relay_all(&events).await;
    let charges = by_name(&all, "charges");
    let mut worker = NatsWorker::bind(
        nats.client.clone(),
        &nats.config.stream,
        read.clone(),
        events.clone(),
        charges.clone(),
    )
    .await
    .expect("bind");
    drain(&mut worker, &read, "charges", head).await;
    nats.delete_stream().await;

    let ids = |docs: Vec<(String, Doc)>| -> Vec<Option<String>> {
        docs.into_iter()
            .map(|(_, d)| {
                let body: serde_json::Value = d.body_as().expect("JSON body");
                body["gateway_charge_id"].as_str().map(str::to_string)
            })
            .collect()
    };
    let next = read.with_prefix(NEXT);
    next.ensure(&refs(&all)).await.expect("ensure next");
    LocalFeed::new(next.clone(), events.clone(), vec![charges])
        .catch_up()
        .await
        .expect("local feed");
    let local = ids(next.all_docs("charges").await.unwrap());
    assert!(
        local.contains(&Some("upcast".into())),
        "the local feed upcasts"
    );
    assert_eq!(ids(read.all_docs("charges").await.unwrap()), local);
}
