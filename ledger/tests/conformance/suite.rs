//! The tests, written once against `dyn EventStore`; `conformance.rs` runs each on both backends.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as Span, Timelike};
use futures_util::StreamExt;
use ledger::access::{Scope, Secret, create_key};
use ledger::chain::{Hash, VerifyReport, canonical_json, to_micros};
use ledger::event::IdempotencyRecord;
use ledger::ids::ApiKeyId;
use ledger::store::{read_all, read_page, verify_chain};
use ledger::upcast::Upcasters;
use ledger::{
    AppendError, AppendRequest, Committed, EventStore, ExpectedVersion, Metadata, NewEvent,
    Position, RecordedEvent, StoreError, StreamId,
};
use serde_json::{Value, json};

use crate::support::{ALLOC, Harness, Kind, Rng, event, req, stream, t0};

// ---------------------------------------------------------------------------------------------
// Helpers

/// The whole log as stored, page by page.
async fn raw_log(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut out: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = out.last().map_or(Position(0), |e| e.position);
        let page = store
            .read_page_raw(after, 1_000)
            .await
            .expect("read a page");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

async fn verify(store: &dyn EventStore, from: i64) -> VerifyReport {
    verify_chain(store, Position(from))
        .await
        .expect("verify the chain")
}

/// The log verifies from the start, up to the head.
async fn assert_chain_holds(store: &dyn EventStore, events: u64) {
    let report = verify(store, 1).await;
    let head = store.head().await.expect("head");
    assert_eq!(report.first_break, None, "the chain must hold");
    assert_eq!(report.checked, events);
    assert_eq!(
        (report.last_position, report.last_hash),
        (head.position, head.hash)
    );
}

fn positions(events: &[RecordedEvent]) -> Vec<i64> {
    events.iter().map(|e| e.position.0).collect()
}

fn committed(outcome: &Result<Committed, AppendError>) -> Committed {
    match outcome {
        Ok(c) => *c,
        Err(e) => panic!("append refused: {e}"),
    }
}

fn idempotency(api_key_id: &str, key: &str, fingerprint: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        api_key_id: api_key_id.to_string(),
        key: key.to_string(),
        fingerprint: fingerprint.to_string(),
        status: 201,
        body: format!(r#"{{"fingerprint":"{fingerprint}"}}"#),
        position: Position(0),
    }
}

// ---------------------------------------------------------------------------------------------
// Invariant 2: optimistic concurrency per stream

pub async fn exact_version_has_one_winner(kind: Kind) {
    let h = Harness::start(kind).await;
    let s = stream("race");
    let mut winners = Vec::new();
    for round in 0..10i64 {
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round)
        };
        let tasks: Vec<_> = (0..50i64)
            .map(|task| {
                let store = h.store.clone();
                let request =
                    AppendRequest::new(s.clone(), expected, vec![event(round * 100 + task)]);
                tokio::spawn(async move { store.append(request).await })
            })
            .collect();
        let mut won = Vec::new();
        for (task, handle) in tasks.into_iter().enumerate() {
            match handle.await.expect("task") {
                Ok(c) => {
                    assert_eq!(c.stream_version, round + 1);
                    assert_eq!(
                        (c.first_position, c.last_position),
                        (Position(round + 1), Position(round + 1))
                    );
                    won.push(round * 100 + task as i64);
                }
                Err(AppendError::WrongExpectedVersion {
                    stream_id,
                    expected: e,
                    actual,
                }) => {
                    assert_eq!(
                        (stream_id, e, actual),
                        (s.clone(), expected, Some(round + 1))
                    );
                }
                Err(other) => panic!("round {round}: unexpected error {other}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one append may win, got {won:?}"
        );
        winners.extend(won);
    }

    let events = h.store.read_stream(&s).await.expect("read stream");
    let versions: Vec<i64> = events.iter().map(|e| e.stream_version).collect();
    assert_eq!(
        versions,
        (1..=10).collect::<Vec<_>>(),
        "no lost or doubled event"
    );
    assert_eq!(positions(&events), (1..=10).collect::<Vec<_>>());
    let recorded: Vec<i64> = events
        .iter()
        .map(|e| e.payload["i"].as_i64().expect("i"))
        .collect();
    assert_eq!(recorded, winners, "the recorded events are the winners'");
    assert_eq!(h.store.head().await.expect("head").position, Position(10));
}

// ---------------------------------------------------------------------------------------------
// Invariant 3: global order = commit order, no gaps, across writers of several processes

enum Op {
    One(AppendRequest),
    Many(Vec<AppendRequest>),
}

/// Random appends of 1 to 5 events to random streams, alone or several per call, until at
/// least `events` events.
fn workload(rng: &mut Rng, streams: &[StreamId], events: usize) -> (Vec<Op>, usize) {
    let request = |rng: &mut Rng| {
        let s = &streams[rng.range(0, streams.len() as u64 - 1) as usize];
        req(s, ExpectedVersion::Any, rng.range(1, 5) as usize)
    };
    let mut ops = Vec::new();
    let mut total = 0;
    while total < events {
        let op = if rng.range(0, 1) == 0 {
            Op::One(request(rng))
        } else {
            Op::Many((0..rng.range(2, 6)).map(|_| request(rng)).collect())
        };
        total += match &op {
            Op::One(r) => r.events.len(),
            Op::Many(rs) => rs.iter().map(|r| r.events.len()).sum(),
        };
        ops.push(op);
    }
    (ops, total)
}

pub async fn tailing_reader_sees_every_position_once_in_order(kind: Kind) {
    let h = Harness::start(kind).await;
    // Two stores on one database: two writer tasks, two connection pools, as two processes.
    let stores = [h.store.clone(), h.open_another().await];
    let streams: Vec<StreamId> = (0..20).map(|_| stream("tail")).collect();
    let mut rng = Rng::new(0x5eed_0003);
    let work: Vec<(Vec<Op>, usize)> = (0..8).map(|_| workload(&mut rng, &streams, 375)).collect();
    let total: usize = work.iter().map(|(_, n)| n).sum();

    let reader = {
        let store = h.store.clone();
        let total = total as i64;
        tokio::spawn(async move {
            let mut checkpoint = Position(0);
            let mut pages = 0u64;
            while checkpoint.0 < total {
                let page = store
                    .read_page_raw(checkpoint, 100)
                    .await
                    .expect("read a page");
                if page.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                pages += 1;
                for e in page {
                    assert_eq!(
                        e.position,
                        checkpoint.next(),
                        "the reader saw a gap or a reordering"
                    );
                    checkpoint = e.position;
                }
            }
            (checkpoint, pages)
        })
    };

    let writers: Vec<_> = work
        .into_iter()
        .enumerate()
        .map(|(w, (ops, _))| {
            let store = stores[w % 2].clone();
            tokio::spawn(async move {
                let mut done: Vec<(Committed, usize)> = Vec::new();
                for op in ops {
                    let (requests, answers) = match op {
                        Op::One(r) => (vec![r.clone()], vec![store.append(r).await]),
                        Op::Many(rs) => (rs.clone(), store.append_many(rs).await),
                    };
                    assert_eq!(answers.len(), requests.len());
                    for (r, a) in requests.iter().zip(&answers) {
                        done.push((committed(a), r.events.len()));
                    }
                }
                done
            })
        })
        .collect();

    let mut ranges = Vec::new();
    for w in writers {
        for (c, n) in w.await.expect("writer") {
            assert_eq!(c.last_position.0 - c.first_position.0 + 1, n as i64);
            ranges.push((c.first_position.0, c.last_position.0));
        }
    }
    let (checkpoint, pages) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the reader must reach the head")
        .expect("reader");

    // The committed ranges tile 1..=total: every position was given out exactly once.
    ranges.sort();
    let mut next = 1;
    for (first, last) in ranges {
        assert_eq!(first, next, "positions given out twice or skipped");
        next = last + 1;
    }
    assert_eq!(next - 1, total as i64);
    assert_eq!(checkpoint, Position(total as i64));
    assert!(pages >= (total as u64).div_ceil(100));
    assert_eq!(
        h.store.head().await.expect("head").position,
        Position(total as i64)
    );
    assert_chain_holds(&*h.store, total as u64).await;
}

// ---------------------------------------------------------------------------------------------
// Invariant 1: append-only, enforced by the database

pub async fn update_delete_truncate_refused_by_database(kind: Kind) {
    let h = Harness::start(kind).await;
    let (a, b) = (stream("ro"), stream("ro"));
    committed(&h.store.append(req(&a, ExpectedVersion::NoStream, 2)).await);
    committed(&h.store.append(req(&b, ExpectedVersion::NoStream, 1)).await);
    let before = raw_log(&*h.store).await;
    let head = h.store.head().await.expect("head");

    let mut refused = vec![
        (
            "UPDATE events SET event_type = 'x' WHERE position = 1",
            "append-only",
        ),
        (
            "UPDATE events SET payload = payload WHERE position = 2",
            "append-only",
        ),
        ("DELETE FROM events WHERE position = 1", "append-only"),
        ("DELETE FROM events", "append-only"),
        ("UPDATE ledger_head SET position = 0", "only moves forward"),
        ("DELETE FROM ledger_head", "only moves forward"),
    ];
    if kind == Kind::Postgres {
        // Plain TRUNCATE is already stopped by the idempotency records' foreign key; CASCADE
        // gets past that, so it shows the trigger.
        refused.push(("TRUNCATE events", "truncate"));
        refused.push(("TRUNCATE events CASCADE", "append-only"));
        refused.push(("TRUNCATE ledger_head", "append-only"));
    }
    for (sql, why) in refused {
        let err = h.exec_raw(sql).await.expect_err(sql);
        assert!(
            err.contains(why),
            "{sql}: refused for the wrong reason: {err}"
        );
    }

    assert_eq!(raw_log(&*h.store).await, before, "the events are unchanged");
    assert_eq!(h.store.head().await.expect("head"), head);
    assert_chain_holds(&*h.store, 3).await;
}

// ---------------------------------------------------------------------------------------------
// Invariant 5: tamper evidence

pub async fn changed_byte_is_found_at_its_position(kind: Kind) {
    let h = Harness::start(kind).await;
    let (a, b) = (stream("audit"), stream("audit"));
    committed(&h.store.append(req(&a, ExpectedVersion::NoStream, 4)).await);
    committed(&h.store.append(req(&b, ExpectedVersion::NoStream, 6)).await);

    let clean = verify(&*h.store, 1).await;
    let head = h.store.head().await.expect("head");
    assert_eq!(clean.first_break, None);
    assert_eq!(clean.checked, 10);
    assert_eq!(
        (clean.last_position, clean.last_hash),
        (Position(10), head.hash)
    );

    h.tamper_payload(7).await;
    let seventh = h.store.read_page_raw(Position(6), 1).await.expect("read")[0].clone();
    assert_eq!(
        seventh.payload["i"],
        json!(999999),
        "the tampering took effect"
    );

    let report = verify(&*h.store, 1).await;
    let found = report.first_break.expect("the change must be found");
    assert_eq!(found.position, Position(7), "{}", found.reason);
    assert!(found.reason.contains("hash"), "{}", found.reason);
    assert_eq!(report.checked, 6);

    // From 7 on, event 7 is checked and fails; from 8 on, its stored hash is trusted.
    let from_7 = verify(&*h.store, 7).await;
    assert_eq!(
        (from_7.first_break.map(|b| b.position), from_7.checked),
        (Some(Position(7)), 0)
    );
    let from_8 = verify(&*h.store, 8).await;
    assert_eq!(from_8.first_break, None);
    assert_eq!(from_8.checked, 3);
    assert_eq!(
        (from_8.last_position, from_8.last_hash),
        (Position(10), head.hash)
    );
}

// ---------------------------------------------------------------------------------------------
// Invariant 6: idempotency is atomic with the effect

pub async fn idempotency_record_and_events_commit_together(kind: Kind) {
    let h = Harness::start(kind).await;
    let store = &*h.store;
    let find = |api: &'static str, key: &'static str| async move {
        store
            .find_idempotency(api, key)
            .await
            .expect("find idempotency")
    };
    let (s1, s2, s3, s4) = (
        stream("idem"),
        stream("idem"),
        stream("idem"),
        stream("idem"),
    );

    // (a) A refused append leaves neither record nor events.
    let refused = store
        .append(
            req(&s1, ExpectedVersion::Exact(5), 2)
                .with_idempotency(idempotency("key_a", "k1", "f1")),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(AppendError::WrongExpectedVersion { actual: None, .. })
        ),
        "{refused:?}"
    );
    assert_eq!(find("key_a", "k1").await, None);
    assert!(store.read_stream(&s1).await.expect("read").is_empty());
    assert_eq!(store.head().await.expect("head").position, Position(0));

    // (b) A recorded one stores its record at the append's last position.
    let c = committed(
        &store
            .append(
                req(&s1, ExpectedVersion::NoStream, 2)
                    .with_idempotency(idempotency("key_a", "k1", "f1")),
            )
            .await,
    );
    assert_eq!(c.last_position, Position(2));
    let first = IdempotencyRecord {
        position: c.last_position,
        ..idempotency("key_a", "k1", "f1")
    };
    assert_eq!(find("key_a", "k1").await, Some(first.clone()));

    // (c) The same key again, on another stream: refused, nothing recorded, record unchanged.
    let again = store
        .append(
            req(&s2, ExpectedVersion::NoStream, 1)
                .with_idempotency(idempotency("key_a", "k1", "f2")),
        )
        .await;
    match again {
        Err(AppendError::IdempotencyKeyExists { api_key_id, key }) => {
            assert_eq!((api_key_id.as_str(), key.as_str()), ("key_a", "k1"))
        }
        other => panic!("expected IdempotencyKeyExists, got {other:?}"),
    }
    assert!(store.read_stream(&s2).await.expect("read").is_empty());
    assert_eq!(find("key_a", "k1").await, Some(first.clone()));

    // The same key under another API key is another key.
    let other_owner = committed(
        &store
            .append(
                req(&s2, ExpectedVersion::NoStream, 1)
                    .with_idempotency(idempotency("key_b", "k1", "f3")),
            )
            .await,
    );
    assert_eq!(other_owner.last_position, Position(3));
    assert_eq!(
        find("key_b", "k1")
            .await
            .map(|r| (r.position, r.fingerprint)),
        Some((Position(3), "f3".into()))
    );
    assert_eq!(find("key_a", "k1").await, Some(first));

    // Within one batch: a refused request does not take the key; the next one may.
    let answers = store
        .append_many(vec![
            req(&s3, ExpectedVersion::Exact(9), 1)
                .with_idempotency(idempotency("key_a", "k4", "refused")),
            req(&s3, ExpectedVersion::NoStream, 1)
                .with_idempotency(idempotency("key_a", "k4", "taken")),
        ])
        .await;
    assert!(
        matches!(answers[0], Err(AppendError::WrongExpectedVersion { .. })),
        "{answers:?}"
    );
    assert_eq!(committed(&answers[1]).last_position, Position(4));
    assert_eq!(
        find("key_a", "k4")
            .await
            .map(|r| (r.position, r.fingerprint)),
        Some((Position(4), "taken".into()))
    );

    // (d) The database refuses the insert itself (an event id already recorded): no record.
    let head = store.head().await.expect("head");
    let reused = store.read_page_raw(Position(0), 1).await.expect("read")[0].event_id;
    let clashing = |key: &str| {
        let mut r =
            req(&s4, ExpectedVersion::Any, 1).with_idempotency(idempotency("key_a", key, "clash"));
        r.events[0].event_id = reused;
        r
    };
    let alone = store.append(clashing("k2")).await;
    assert!(
        matches!(alone, Err(AppendError::Store(StoreError::Rejected(_)))),
        "{alone:?}"
    );
    assert_eq!(find("key_a", "k2").await, None);
    assert_eq!(store.head().await.expect("head"), head);
    assert!(store.read_stream(&s4).await.expect("read").is_empty());

    // ...also when it shares its batch with a good request, which is still recorded.
    let good = stream("idem");
    let answers = store
        .append_many(vec![
            clashing("k5"),
            req(&good, ExpectedVersion::NoStream, 1)
                .with_idempotency(idempotency("key_a", "k6", "good")),
        ])
        .await;
    assert!(
        matches!(answers[0], Err(AppendError::Store(StoreError::Rejected(_)))),
        "{answers:?}"
    );
    assert_eq!(committed(&answers[1]).last_position, Position(5));
    assert_eq!(find("key_a", "k5").await, None);
    assert_eq!(
        find("key_a", "k6").await.map(|r| r.position),
        Some(Position(5))
    );
    assert!(store.read_stream(&s4).await.expect("read").is_empty());
    assert_chain_holds(store, 5).await;
}

// ---------------------------------------------------------------------------------------------
// Reading the whole log with bounded memory

pub async fn reading_100k_events_keeps_memory_flat(kind: Kind) {
    const EVENTS: i64 = 100_000;
    const CHUNK: i64 = 1_000;
    let h = Harness::exclusive(kind).await;
    let filler = "x".repeat(240);
    for chunk in 0..EVENTS / CHUNK {
        let requests: Vec<AppendRequest> = (chunk * CHUNK..(chunk + 1) * CHUNK)
            .map(|i| {
                let payload =
                    json!({ "i": i, "customer": format!("cus_{i:032x}"), "note": filler });
                let s = StreamId::new(format!("bulk-{i}")).expect("stream id");
                AppendRequest::new(
                    s,
                    ExpectedVersion::NoStream,
                    vec![NewEvent::new("ThingHappened", payload, t0())],
                )
            })
            .collect();
        for answer in h.store.append_many(requests).await {
            committed(&answer);
        }
    }
    assert_eq!(
        h.store.head().await.expect("head").position,
        Position(EVENTS)
    );

    let (before, allocated_before) = (ALLOC.current(), ALLOC.allocated());
    ALLOC.reset_peak();
    let mut count = 0i64;
    let mut payload_bytes = 0usize;
    let mut events = std::pin::pin!(read_all(&*h.store, Position(0), 500));
    while let Some(e) = events.next().await {
        let e = e.expect("read");
        count += 1;
        assert_eq!(
            e.position,
            Position(count),
            "read_all must be in position order"
        );
        payload_bytes += canonical_json(&e.payload).len();
    }
    let growth = ALLOC.peak().saturating_sub(before);
    let churn = ALLOC.allocated() - allocated_before;

    println!(
        "[{kind:?}] read_all of {count} events ({:.1} MB of payload, {:.0} MiB allocated \
         and freed on the way): peak heap growth {:.2} MiB",
        payload_bytes as f64 / 1e6,
        churn as f64 / (1024.0 * 1024.0),
        growth as f64 / (1024.0 * 1024.0)
    );
    assert!(
        churn > payload_bytes,
        "the counting allocator must see the reading"
    );
    assert_eq!(count, EVENTS);
    assert!(
        payload_bytes > 30_000_000,
        "the log must be larger than the bound: {payload_bytes}"
    );
    assert!(
        growth < 16 << 20,
        "reading the log grew the heap by {growth} bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// Invariant 7: events are versioned

pub async fn upcasters_apply_on_read_but_the_chain_checks_stored_bytes(kind: Kind) {
    let upcasters = Upcasters::new().register("ThingHappened", 1, |mut payload| {
        if let Some(map) = payload.as_object_mut()
            && let Some(amount) = map.remove("amount")
        {
            map.insert("amount_minor".into(), amount);
        }
        payload
    });
    let h = Harness::with_upcasters(kind, upcasters).await;
    let s = stream("versioned");
    let v1 = NewEvent::new(
        "ThingHappened",
        json!({ "amount": 1250, "currency": "EUR" }),
        t0(),
    );
    let other = NewEvent::new("OtherThing", json!({ "amount": 7 }), t0());
    let mut v2 = NewEvent::new(
        "ThingHappened",
        json!({ "amount_minor": 5, "currency": "USD" }),
        t0(),
    );
    v2.schema_version = 2;
    let ids = [v1.event_id, other.event_id, v2.event_id];
    committed(
        &h.store
            .append(AppendRequest::new(
                s.clone(),
                ExpectedVersion::NoStream,
                vec![v1, other, v2],
            ))
            .await,
    );

    let upcast_v1 = json!({ "amount_minor": 1250, "currency": "EUR" });
    let expected = [
        (2, upcast_v1.clone()),
        (1, json!({ "amount": 7 })),
        (2, json!({ "amount_minor": 5, "currency": "USD" })),
    ];
    let shape = |events: &[RecordedEvent]| -> Vec<(i32, Value)> {
        events
            .iter()
            .map(|e| (e.schema_version, e.payload.clone()))
            .collect()
    };

    let by_stream = h.store.read_stream(&s).await.expect("read stream");
    assert_eq!(shape(&by_stream), expected);
    let by_page = read_page(&*h.store, Position(0), 10)
        .await
        .expect("read page");
    assert_eq!(shape(&by_page), expected);
    let by_id = h
        .store
        .read_event(ids[0])
        .await
        .expect("read event")
        .expect("found");
    assert_eq!((by_id.schema_version, by_id.payload), (2, upcast_v1));

    let raw = h
        .store
        .read_page_raw(Position(0), 10)
        .await
        .expect("read raw");
    assert_eq!(
        (raw[0].schema_version, raw[0].payload.clone()),
        (1, json!({ "amount": 1250, "currency": "EUR" }))
    );
    assert_eq!(shape(&raw)[1..], expected[1..]);
    assert_chain_holds(&*h.store, 3).await;
}

// ---------------------------------------------------------------------------------------------
// Invariants 2 and 4: each request of a batch is answered on its own

pub async fn one_request_refused_does_not_fail_its_batch(kind: Kind) {
    let h = Harness::start(kind).await;
    let existing = stream("batch");
    committed(
        &h.store
            .append(req(&existing, ExpectedVersion::NoStream, 1))
            .await,
    );
    let (fresh, empty, nul, clash) = (
        stream("batch"),
        stream("batch"),
        stream("batch"),
        stream("batch"),
    );

    // Refusals decided by the store's checks.
    let mut with_nul = req(&nul, ExpectedVersion::Any, 2);
    with_nul.events[1].payload = json!({ "name": "a\u{0}b" });
    let batch = vec![
        req(&fresh, ExpectedVersion::NoStream, 2),
        req(&existing, ExpectedVersion::NoStream, 1),
        req(&empty, ExpectedVersion::Any, 0),
        with_nul,
        req(&existing, ExpectedVersion::Exact(1), 1),
    ];
    let answers = h.store.append_many(batch.clone()).await;
    assert_eq!(answers.len(), 5);
    assert_eq!(
        committed(&answers[0]),
        Committed {
            first_position: Position(2),
            last_position: Position(3),
            stream_version: 2
        }
    );
    assert!(
        matches!(
            &answers[1],
            Err(AppendError::WrongExpectedVersion {
                actual: Some(1),
                expected: ExpectedVersion::NoStream,
                ..
            })
        ),
        "{:?}",
        answers[1]
    );
    assert!(
        matches!(answers[2], Err(AppendError::Invalid(_))),
        "{:?}",
        answers[2]
    );
    assert!(
        matches!(answers[3], Err(AppendError::Invalid(_))),
        "{:?}",
        answers[3]
    );
    assert_eq!(
        committed(&answers[4]),
        Committed {
            first_position: Position(4),
            last_position: Position(4),
            stream_version: 2
        }
    );

    // A refusal by the database itself (an event id already recorded) in the middle of a batch.
    let first_id = h.store.read_page_raw(Position(0), 1).await.expect("read")[0].event_id;
    let mut clashing = req(&clash, ExpectedVersion::Any, 1);
    clashing.events[0].event_id = first_id;
    let batch2 = vec![
        req(&fresh, ExpectedVersion::Exact(2), 1),
        clashing,
        req(&existing, ExpectedVersion::Exact(2), 2),
    ];
    let answers = h.store.append_many(batch2.clone()).await;
    assert_eq!(
        committed(&answers[0]),
        Committed {
            first_position: Position(5),
            last_position: Position(5),
            stream_version: 3
        }
    );
    assert!(
        matches!(answers[1], Err(AppendError::Store(StoreError::Rejected(_)))),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        committed(&answers[2]),
        Committed {
            first_position: Position(6),
            last_position: Position(7),
            stream_version: 4
        }
    );

    // Only the good requests were recorded, in order, at contiguous positions.
    let log = raw_log(&*h.store).await;
    assert_eq!(positions(&log), (1..=7).collect::<Vec<_>>());
    let recorded: Vec<uuid::Uuid> = log[1..].iter().map(|e| e.event_id).collect();
    let good = [&batch[0], &batch[4], &batch2[0], &batch2[2]];
    let expected: Vec<uuid::Uuid> = good
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.event_id))
        .collect();
    assert_eq!(recorded, expected);
    for s in [&empty, &nul, &clash] {
        assert!(
            h.store.read_stream(s).await.expect("read").is_empty(),
            "{s} must be empty"
        );
    }
    let versions: Vec<i64> = h
        .store
        .read_stream(&existing)
        .await
        .expect("read")
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    assert_chain_holds(&*h.store, 7).await;
}

// ---------------------------------------------------------------------------------------------
// Atomic appends of several streams: all or nothing, also inside a shared batch

pub async fn atomic_appends_record_all_or_nothing(kind: Kind) {
    const N: usize = 24;
    let h = Harness::start(kind).await;
    let shared = stream("shared");
    committed(
        &h.store
            .append(req(&shared, ExpectedVersion::NoStream, 1))
            .await,
    );

    // N racers each create a stream of their own together with the next event of `shared`:
    // one wins, and no loser leaves its own stream behind.
    let start = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (store, start, shared) = (h.store.clone(), start.clone(), shared.clone());
            let own = stream("own");
            tokio::spawn(async move {
                let unit = vec![
                    req(&own, ExpectedVersion::NoStream, 2),
                    req(&shared, ExpectedVersion::Exact(1), 1),
                ];
                start.wait().await;
                (own, store.append_atomic(unit).await)
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        let (own, answer) = task.await.expect("task");
        let own_events = h.store.read_stream(&own).await.expect("read").len();
        match answer {
            Ok(c) => {
                winners += 1;
                assert_eq!(c.len(), 2);
                assert_eq!(c[0].last_position.0 + 1, c[1].first_position.0);
                assert_eq!(c[1].stream_version, 2);
                assert_eq!(own_events, 2);
            }
            Err(e) => {
                assert!(
                    matches!(e, AppendError::WrongExpectedVersion { ref stream_id, .. } if *stream_id == shared),
                    "{e:?}"
                );
                assert_eq!(own_events, 0, "{own} of a refused unit must be empty");
            }
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(h.store.read_stream(&shared).await.expect("read").len(), 2);

    // A unit the database refuses (an event id recorded already) leaves nothing, and does not
    // fail an ordinary request committed in the same batch.
    let first_id = h.store.read_page_raw(Position(0), 1).await.expect("read")[0].event_id;
    let (fresh, clash, other) = (stream("fresh"), stream("clash"), stream("other"));
    let mut clashing = req(&clash, ExpectedVersion::Any, 1);
    clashing.events[0].event_id = first_id;
    let (atomic, single) = tokio::join!(
        h.store
            .append_atomic(vec![req(&fresh, ExpectedVersion::NoStream, 1), clashing]),
        h.store.append(req(&other, ExpectedVersion::NoStream, 1)),
    );
    assert!(
        matches!(atomic, Err(AppendError::Store(StoreError::Rejected(_)))),
        "{atomic:?}"
    );
    committed(&single);
    for s in [&fresh, &clash] {
        assert!(
            h.store.read_stream(s).await.expect("read").is_empty(),
            "{s} must be empty"
        );
    }
    // A request the store's own checks refuse fails the unit before it is queued.
    let empty = req(&fresh, ExpectedVersion::Any, 0);
    let refused = h
        .store
        .append_atomic(vec![req(&fresh, ExpectedVersion::NoStream, 1), empty])
        .await;
    assert!(
        matches!(refused, Err(AppendError::Invalid(_))),
        "{refused:?}"
    );
    assert!(h.store.read_stream(&fresh).await.expect("read").is_empty());
    assert_eq!(
        h.store.append_atomic(Vec::new()).await.expect("empty"),
        vec![]
    );

    let head = h.store.head().await.expect("head").position.0;
    assert_eq!(head, 1 + 3 + 1);
    assert_chain_holds(&*h.store, 5).await;
}

// ---------------------------------------------------------------------------------------------
// Invariant 4: group commit

pub async fn group_commit_batches_concurrent_appends(kind: Kind) {
    const N: usize = 400;
    let h = Harness::start(kind).await;
    let start = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (store, start) = (h.store.clone(), start.clone());
            let request = req(&stream("group"), ExpectedVersion::NoStream, 1);
            tokio::spawn(async move {
                start.wait().await;
                store.append(request).await
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        let c = committed(&t.await.expect("task"));
        assert_eq!((c.first_position, c.stream_version), (c.last_position, 1));
        got.push(c.first_position.0);
    }
    got.sort();
    assert_eq!(
        got,
        (1..=N as i64).collect::<Vec<_>>(),
        "each position exactly once"
    );

    let stats = h.store.writer_stats();
    println!(
        "[{kind:?}] {N} concurrent appends committed in {} batches",
        stats.batches
    );
    assert_eq!((stats.requests, stats.events), (N as u64, N as u64));
    assert!(stats.batches < N as u64, "no batching: {stats:?}");

    let log = raw_log(&*h.store).await;
    assert_eq!(positions(&log), (1..=N as i64).collect::<Vec<_>>());
    let streams: HashSet<&StreamId> = log.iter().map(|e| &e.stream_id).collect();
    assert_eq!(streams.len(), N);
    assert_chain_holds(&*h.store, N as u64).await;
}

// ---------------------------------------------------------------------------------------------
// Round trip of every field

pub async fn streams_and_events_read_back_exactly(kind: Kind) {
    let h = Harness::start(kind).await;
    let s = stream("exact");
    let metadata = Metadata {
        actor: Some("key_0b6c4a1e9f2d4c3b8a7e6d5c4b3a2910".into()),
        request_id: Some("req-ünïcødé-1".into()),
        correlation_id: Some(uuid::Uuid::new_v4().to_string()),
        causation_id: Some(uuid::Uuid::new_v4().to_string()),
        idempotency_key: Some("idem \"quoted\" 🔑".into()),
        // A field this build does not name (written by a newer one): kept, and hashed as stored.
        other: [("tenant".to_string(), json!({"id": 7, "region": "eu"}))].into(),
    };
    let nested = json!({
        "zeta": { "y": [3, { "b": null, "a": "s\"q" }], "x": true },
        "alpha": "Zoë — 東京 🚀 \\ back\nslash\ttab \u{2028}",
        "Émile": { "": "empty key", "b": [], "a": {} },
        "m": -1,
    });
    let numbers = json!({
        "max": i64::MAX,
        "min": i64::MIN,
        "u64_max": u64::MAX,
        "beyond_f64": 9_007_199_254_740_993i64,
        "minor_units": 123_456_789_012_345i64,
    });
    let events = vec![
        NewEvent::new("NestedThing", nested.clone(), t0()).with_metadata(metadata.clone()),
        NewEvent::new("Numbers", numbers.clone(), t0() + Span::nanoseconds(999)),
        NewEvent::new("Empty", json!({}), t0() - Span::days(400)),
    ];
    let c = committed(
        &h.store
            .append(AppendRequest::new(
                s.clone(),
                ExpectedVersion::NoStream,
                events.clone(),
            ))
            .await,
    );
    assert_eq!(
        c,
        Committed {
            first_position: Position(1),
            last_position: Position(3),
            stream_version: 3
        }
    );

    let by_stream = h.store.read_stream(&s).await.expect("read stream");
    assert_eq!(by_stream.len(), 3);
    let mut prev = Hash::GENESIS;
    for (i, (got, sent)) in by_stream.iter().zip(&events).enumerate() {
        assert_eq!(got.position, Position(i as i64 + 1));
        assert_eq!(got.stream_version, i as i64 + 1);
        assert_eq!((&got.stream_id, got.event_id), (&s, sent.event_id));
        assert_eq!(
            (got.event_type.as_str(), got.schema_version),
            (sent.event_type.as_str(), 1)
        );
        assert_eq!(got.payload, sent.payload);
        assert_eq!(canonical_json(&got.payload), canonical_json(&sent.payload));
        assert_eq!(got.metadata, sent.metadata);
        assert_eq!(got.occurred_at, to_micros(sent.occurred_at));
        assert_eq!(got.recorded_at, to_micros(got.recorded_at));
        assert_eq!(got.prev_hash, prev);
        prev = got.hash;
        let by_id = h.store.read_event(sent.event_id).await.expect("read event");
        assert_eq!(by_id.as_ref(), Some(got));
    }
    assert_eq!(
        by_stream[0].occurred_at.nanosecond(),
        123_456_000,
        "truncated to microseconds"
    );
    assert_eq!(by_stream[1].occurred_at.nanosecond(), 123_457_000);
    assert_eq!(by_stream[0].payload["alpha"], nested["alpha"]);
    assert_eq!(by_stream[1].payload["u64_max"].as_u64(), Some(u64::MAX));
    assert_eq!(by_stream[1].payload["min"].as_i64(), Some(i64::MIN));
    assert_eq!(raw_log(&*h.store).await, by_stream);
    assert_eq!(
        h.store
            .read_event(uuid::Uuid::new_v4())
            .await
            .expect("read event"),
        None
    );
    assert!(
        h.store
            .read_stream(&stream("exact"))
            .await
            .expect("read")
            .is_empty()
    );

    // Fractional numbers: whatever form the database keeps them in, they read back as the same
    // numbers and the chain still holds.
    let floats = json!({
        "half": 1.5,
        "tenth": 0.1,
        "third": 1.0 / 3.0,
        "one": 1.0,
        "tiny": 1e-7,
        "huge": 1e300,
        "e16": 1e16,
        "e17": 1.5e17,
        "negative_e18": -2e18,
        "beyond_u64": 3e19,
        "negative_zero": -0.0,
    });
    let c = committed(
        &h.store
            .append(AppendRequest::new(
                s.clone(),
                ExpectedVersion::Exact(3),
                vec![NewEvent::new("Floats", floats.clone(), t0())],
            ))
            .await,
    );
    let got = h.store.read_page_raw(Position(3), 10).await.expect("read")[0].clone();
    assert_eq!(got.position, c.last_position);
    let keys: BTreeSet<&String> = got.payload.as_object().expect("object").keys().collect();
    assert_eq!(keys, floats.as_object().expect("object").keys().collect());
    for (k, v) in floats.as_object().expect("object") {
        assert_eq!(
            got.payload[k].as_f64(),
            v.as_f64(),
            "{k}: {} read back as {}",
            v,
            got.payload[k]
        );
    }
    assert_chain_holds(&*h.store, 4).await;
}

// ---------------------------------------------------------------------------------------------
// API keys

pub async fn api_keys_are_found_listed_and_revoked(kind: Kind) {
    let h = Harness::start(kind).await;
    let keys = &*h.keys;
    let now = t0();
    let (writer, secret) = create_key(keys, Scope::Write, now)
        .await
        .expect("create key");
    let (admin, admin_secret) = create_key(keys, Scope::Admin, now + Span::seconds(1))
        .await
        .expect("create key");
    assert_eq!(writer.created_at, to_micros(now));
    assert!(secret.expose().starts_with(&writer.prefix));

    let found = keys
        .find_active_key(secret.digest())
        .await
        .expect("find")
        .expect("the key is active");
    assert_eq!(found, writer);
    assert_eq!(found.scope, Scope::Write);
    let presented = Secret::from_presented(admin_secret.expose());
    assert_eq!(
        keys.find_active_key(presented.digest())
            .await
            .expect("find"),
        Some(admin.clone())
    );
    assert_eq!(
        keys.find_active_key(Secret::generate().digest())
            .await
            .expect("find"),
        None
    );

    assert_eq!(
        keys.list_keys().await.expect("list"),
        vec![writer.clone(), admin.clone()]
    );

    let revoked_at = now + Span::minutes(5) + Span::nanoseconds(789);
    assert!(
        keys.revoke_key(writer.id, revoked_at)
            .await
            .expect("revoke")
    );
    assert!(
        !keys
            .revoke_key(writer.id, revoked_at)
            .await
            .expect("revoke again")
    );
    assert!(
        !keys
            .revoke_key(ApiKeyId::new(), revoked_at)
            .await
            .expect("revoke unknown")
    );
    assert_eq!(
        keys.find_active_key(secret.digest()).await.expect("find"),
        None
    );
    assert_eq!(
        keys.find_active_key(admin_secret.digest())
            .await
            .expect("find"),
        Some(admin.clone())
    );

    let listed = keys.list_keys().await.expect("list");
    let revoked = ledger::access::ApiKey {
        revoked_at: Some(to_micros(revoked_at)),
        ..writer
    };
    assert_eq!(listed, vec![revoked, admin]);
}

/// Invariant 5, continued: an event removed from the middle or the end of the log is found, at
/// the position where it is missing.
pub async fn removed_events_are_found_where_they_are_missing(kind: Kind) {
    let h = Harness::start(kind).await;
    let s = stream("audit");
    committed(&h.store.append(req(&s, ExpectedVersion::NoStream, 8)).await);
    assert_eq!(verify(&*h.store, 1).await.first_break, None);

    h.delete_event(8).await;
    let tail = verify(&*h.store, 1).await;
    let found = tail
        .first_break
        .expect("a missing last event must be found");
    assert_eq!(found.position, Position(8), "{}", found.reason);
    assert_eq!(tail.checked, 7);

    h.delete_event(4).await;
    let middle = verify(&*h.store, 1).await;
    let found = middle
        .first_break
        .expect("a missing middle event must be found");
    assert_eq!(found.position, Position(4), "{}", found.reason);
    assert!(found.reason.contains("position"), "{}", found.reason);
    assert_eq!(middle.checked, 3);
}

// ---------------------------------------------------------------------------------------------
// Personal-data keys (crypto-shredding)

pub async fn shredded_data_keys_stay_shredded(kind: Kind) {
    use ledger::vault::{Key, Vault, VaultError};
    let h = Harness::start(kind).await;
    let vault = Vault::new(Key::generate().expect("key"), h.data_keys.clone());
    let sealed = vault.seal("cus_a", b"Ada").await.expect("seal");
    let again = vault.seal("cus_a", b"Ada").await.expect("seal");
    assert_ne!(sealed, again, "a fresh nonce each time");
    assert_eq!(
        vault.open("cus_a", &sealed).await.expect("open").as_deref(),
        Some(&b"Ada"[..])
    );
    assert_eq!(
        vault.open("cus_a", &again).await.expect("open").as_deref(),
        Some(&b"Ada"[..])
    );
    // Sealed for one subject, it does not open as another's (nor under another master key).
    vault.seal("cus_b", b"Bob").await.expect("seal");
    assert!(matches!(
        vault.open("cus_b", &sealed).await,
        Err(VaultError::Unauthentic(_))
    ));
    let stranger = Vault::new(Key::generate().expect("key"), h.data_keys.clone());
    assert!(matches!(
        stranger.open("cus_a", &sealed).await,
        Err(VaultError::Unauthentic(_))
    ));

    assert!(vault.shred("cus_a", t0()).await.expect("shred"));
    assert!(!vault.shred("cus_a", t0()).await.expect("shred twice"));
    assert_eq!(vault.open("cus_a", &sealed).await.expect("open"), None);
    assert!(matches!(
        vault.seal("cus_a", b"Ada").await,
        Err(VaultError::Shredded(_))
    ));
    assert_eq!(
        h.data_keys
            .insert_data_key("cus_a", &[0; 60], t0())
            .await
            .expect("insert"),
        None,
        "a shredded subject gets no new key"
    );
    // The database itself refuses to put a key back.
    let restore = h
        .exec_raw("UPDATE data_keys SET wrapped = zeroblob(60), shredded_at = NULL WHERE subject = 'cus_a'")
        .await;
    let restore_pg = h
        .exec_raw("UPDATE data_keys SET wrapped = decode(repeat('00', 60), 'hex'), shredded_at = NULL WHERE subject = 'cus_a'")
        .await;
    assert!(
        restore.is_err() && restore_pg.is_err(),
        "{restore:?} {restore_pg:?}"
    );
    assert_eq!(
        vault
            .open("cus_b", &vault.seal("cus_b", b"Bob").await.expect("seal"))
            .await
            .expect("open")
            .as_deref(),
        Some(&b"Bob"[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Invariants 2 and 3 with two processes: what a writer remembers of its own batches is never
// the last word (the PostgreSQL writer plans on it and has the database check it)

pub async fn stale_knowledge_of_another_writer_never_decides(kind: Kind) {
    let h = Harness::start(kind).await;
    let other = h.open_another().await;
    let (s, t, u, w) = (
        stream("stale"),
        stream("stale"),
        stream("stale"),
        stream("stale"),
    );
    committed(&h.store.append(req(&s, ExpectedVersion::NoStream, 2)).await);
    committed(&h.store.append(req(&t, ExpectedVersion::NoStream, 1)).await);
    // The other process appends to `s` and creates `w`; this one learns the new head through
    // an append elsewhere (`Any` on a new stream: read under the lock), but not `s`'s version
    // nor `w`.
    committed(&other.append(req(&s, ExpectedVersion::Exact(2), 1)).await);
    committed(&other.append(req(&w, ExpectedVersion::NoStream, 1)).await);
    committed(&h.store.append(req(&u, ExpectedVersion::Any, 1)).await);

    // Planned on `s` at 2, the first request would be refused and the second written: the
    // database must see `s` at 3 and have the batch planned again.
    let answers = h
        .store
        .append_many(vec![
            req(&s, ExpectedVersion::Exact(3), 1),
            req(&t, ExpectedVersion::Exact(1), 1),
        ])
        .await;
    assert_eq!(committed(&answers[0]).stream_version, 4);
    assert_eq!(committed(&answers[1]).stream_version, 2);

    // A refusal names the version the database holds, not the remembered one.
    match h.store.append(req(&w, ExpectedVersion::NoStream, 1)).await {
        Err(AppendError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, Some(1)),
        other => panic!("expected a version conflict on w, got {other:?}"),
    }
    let answers = h
        .store
        .append_many(vec![
            req(&w, ExpectedVersion::Exact(1), 1),
            req(&s, ExpectedVersion::Any, 1),
        ])
        .await;
    assert_eq!(committed(&answers[0]).stream_version, 2);
    assert_eq!(committed(&answers[1]).stream_version, 5);

    // An idempotency key taken by the other process stays taken here.
    let mut first = req(&stream("stale"), ExpectedVersion::NoStream, 1);
    first.idempotency = Some(idempotency("key_1", "k-stale", "fp"));
    committed(&other.append(first).await);
    let mut again = req(&stream("stale"), ExpectedVersion::NoStream, 1);
    again.idempotency = Some(idempotency("key_1", "k-stale", "fp"));
    let answers = h
        .store
        .append_many(vec![again, req(&t, ExpectedVersion::Exact(2), 1)])
        .await;
    assert!(
        matches!(&answers[0], Err(AppendError::IdempotencyKeyExists { .. })),
        "got {:?}",
        answers[0]
    );
    assert_eq!(committed(&answers[1]).stream_version, 3);

    let versions: Vec<i64> = h
        .store
        .read_stream(&s)
        .await
        .expect("read s")
        .iter()
        .map(|e| e.stream_version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    assert_chain_holds(h.store.as_ref(), 12).await;

    // Refusals too are the ones the database's state gives, also where the batch writes
    // nothing that would prove the state it was planned on. `x` exists (the other process made
    // it) and this one does not know it; the batch's first request on `x` is refused for its
    // key, taken earlier in the batch: `x` was not written, so it was not proven absent — the
    // second request on `x` expects the version `x` has, and is recorded.
    let (x, y) = (stream("stale"), stream("stale"));
    committed(&other.append(req(&x, ExpectedVersion::NoStream, 1)).await);
    committed(
        &h.store
            .append(req(&stream("stale"), ExpectedVersion::Any, 1))
            .await,
    );
    let mut first = req(&y, ExpectedVersion::NoStream, 1);
    first.idempotency = Some(idempotency("key_1", "k-batch", "fp"));
    let mut twin = req(&x, ExpectedVersion::NoStream, 1);
    twin.idempotency = Some(idempotency("key_1", "k-batch", "fp"));
    let answers = h
        .store
        .append_many(vec![first, twin, req(&x, ExpectedVersion::Exact(1), 1)])
        .await;
    assert_eq!(committed(&answers[0]).stream_version, 1);
    assert!(answers[1].is_err(), "got {:?}", answers[1]);
    assert_eq!(
        committed(&answers[2]).stream_version,
        2,
        "x is at 1, not absent"
    );

    // A unit refused on one request's version, whose other request's key is taken already:
    // refused for the key, as the transaction would have it (it checks that request first).
    let mut taken = req(&stream("stale"), ExpectedVersion::NoStream, 1);
    taken.idempotency = Some(idempotency("key_1", "k-unit", "fp"));
    committed(&h.store.append(taken).await);
    let mut again = req(&stream("stale"), ExpectedVersion::NoStream, 1);
    again.idempotency = Some(idempotency("key_1", "k-unit", "fp"));
    let refused = h
        .store
        .append_atomic(vec![again, req(&t, ExpectedVersion::Exact(1), 1)])
        .await;
    assert!(
        matches!(refused, Err(AppendError::IdempotencyKeyExists { .. })),
        "got {refused:?}"
    );
}

/// A reader of some categories gets every event of them once, in order, and none of the others
/// (`chargeback` is not `charge`); when the log ends with others, it still gets to the head.
pub async fn reading_categories_skips_the_rest_and_misses_nothing(kind: Kind) {
    let h = Harness::start(kind).await;
    let streams: Vec<StreamId> = ["charge", "invoice", "chargeback", "charge", "customer"]
        .iter()
        .map(|c| stream(c))
        .collect();
    let mut versions = vec![0usize; streams.len()];
    for i in 0..23 {
        let k = i % streams.len();
        let expected = if versions[k] == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(versions[k] as i64)
        };
        committed(&h.store.append(req(&streams[k], expected, 1 + i % 2)).await);
        versions[k] += 1 + i % 2;
    }
    // The log ends with events of neither category.
    committed(
        &h.store
            .append(req(&stream("customer"), ExpectedVersion::NoStream, 3))
            .await,
    );
    let wanted = ["charge", "invoice"];
    let expected: Vec<i64> = raw_log(h.store.as_ref())
        .await
        .iter()
        .filter(|e| wanted.contains(&e.stream_id.category()))
        .map(|e| e.position.0)
        .collect();
    let head = h.store.head().await.expect("head").position;
    for limit in [1, 2, 7, 1_000] {
        let mut after = Position(0);
        let mut seen = Vec::new();
        loop {
            let page = h
                .store
                .read_categories(after, limit, &wanted)
                .await
                .expect("read");
            assert!(page.events.len() <= limit as usize);
            assert!(page.through >= after, "{kind:?}: never back");
            for e in &page.events {
                assert!(e.position > after && e.position <= page.through);
            }
            seen.extend(positions(&page.events));
            after = page.through;
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, expected, "{kind:?} limit {limit}");
        assert_eq!(
            after, head,
            "{kind:?} limit {limit}: read through to the head"
        );
        let done = h
            .store
            .read_categories(after, limit, &wanted)
            .await
            .expect("read");
        assert!(done.events.is_empty() && !done.more && done.through == head);
    }
    let nothing = h
        .store
        .read_categories(Position(0), 0, &wanted)
        .await
        .expect("read");
    assert!(nothing.events.is_empty() && !nothing.more && nothing.through == Position(0));

    // While another task appends: every wanted event once, in order, none skipped.
    let writer = {
        let store = h.store.clone();
        tokio::spawn(async move {
            for i in 0..120 {
                let category = ["charge", "customer", "invoice", "plan"][i % 4];
                committed(
                    &store
                        .append(req(&stream(category), ExpectedVersion::NoStream, 1))
                        .await,
                );
            }
        })
    };
    let mut after = head;
    let mut seen = Vec::new();
    loop {
        let finished = writer.is_finished();
        let page = h
            .store
            .read_categories(after, 3, &wanted)
            .await
            .expect("read");
        seen.extend(positions(&page.events));
        after = page.through;
        if finished && !page.more {
            break;
        }
        tokio::task::yield_now().await;
    }
    writer.await.expect("writer");
    let expected: Vec<i64> = raw_log(h.store.as_ref())
        .await
        .iter()
        .filter(|e| e.position > head && wanted.contains(&e.stream_id.category()))
        .map(|e| e.position.0)
        .collect();
    assert_eq!(seen, expected, "{kind:?}: under concurrent appends");
}

// ---------------------------------------------------------------------------------------------
// The tail: what a store keeps of its own appends for the process's readers

/// The events a store keeps of its own appends are the log's, field for field (a refused
/// request and an atomic pair in the batches); a position another process wrote is never
/// answered from them; and `read_page`, which answers from them what they hold, still reads
/// every position once, in order.
pub async fn the_tail_holds_what_the_log_holds(kind: Kind) {
    let h = Harness::start(kind).await;
    let tail = h.store.tail().expect("both stores keep a tail");
    let (charge, invoice) = (stream("charge"), stream("invoice"));
    let metadata = Metadata {
        actor: Some("key_0b6c4a1e9f2d4c3b8a7e6d5c4b3a2910".into()),
        idempotency_key: Some("idem \"quoted\" 🔑".into()),
        other: [
            ("tenant".to_string(), json!({"id": 7, "region": "eu"})),
            ("weight".to_string(), json!(1e16)),
            // A name this build gives a field of its own: it reads back as that field.
            ("request_id".to_string(), json!("set-through-other")),
        ]
        .into(),
        ..Metadata::default()
    };
    let odd = json!({
        "zeta": { "y": [3, { "b": null, "a": "s\"q" }], "x": true },
        "alpha": "Zoë — 東京 🚀 \\ back\nslash",
        "amount": i64::MAX,
        "m": -1,
        // Floats come back from the log in their canonical form (`1e16` as an integer).
        "floats": [1e16, -0.0, 1.5, 0.1],
    });
    let answers = h
        .store
        .append_many(vec![
            AppendRequest::new(
                charge.clone(),
                ExpectedVersion::NoStream,
                vec![
                    NewEvent::new("Odd", odd, t0()).with_metadata(metadata),
                    NewEvent::new("Empty", json!({}), t0() + Span::nanoseconds(999)),
                ],
            ),
            // Refused in the same batch: the stream exists by then.
            req(&charge, ExpectedVersion::NoStream, 1),
            req(&invoice, ExpectedVersion::NoStream, 3),
        ])
        .await;
    assert!(answers[0].is_ok() && answers[1].is_err() && answers[2].is_ok());
    h.store
        .append_atomic(vec![
            req(&charge, ExpectedVersion::Exact(2), 1),
            req(&stream("customer"), ExpectedVersion::NoStream, 2),
        ])
        .await
        .expect("atomic append");
    let log = raw_log(h.store.as_ref()).await;
    assert_eq!(positions(&log), (1..=8).collect::<Vec<_>>());
    for after in 0..log.len() {
        for limit in [1, 3, 100] {
            let page = tail
                .page(Position(after as i64), limit)
                .expect("the next position is held");
            let end = (after + limit as usize).min(log.len());
            assert_eq!(
                page,
                log[after..end],
                "{kind:?} after {after} limit {limit}"
            );
        }
    }
    assert!(
        tail.page(Position(8), 10).is_none(),
        "nothing after the head"
    );
    let charges = tail
        .categories(Position(0), 100, &["charge"])
        .expect("held");
    let expected: Vec<&RecordedEvent> = log
        .iter()
        .filter(|e| e.stream_id.category() == "charge")
        .collect();
    assert_eq!(charges.events.iter().collect::<Vec<_>>(), expected);
    assert_eq!((charges.through, charges.more), (Position(8), false));
    let first = tail.categories(Position(0), 1, &["charge"]).expect("held");
    assert_eq!(
        (positions(&first.events), first.through, first.more),
        (vec![1], Position(1), true)
    );

    // Positions 9 and 10 written by another process, 11 by this one.
    let other = h.open_another().await;
    committed(
        &other
            .append(req(&stream("plan"), ExpectedVersion::NoStream, 2))
            .await,
    );
    committed(
        &h.store
            .append(req(&stream("charge"), ExpectedVersion::NoStream, 1))
            .await,
    );
    let log = raw_log(h.store.as_ref()).await;
    assert_eq!(log.len(), 11);
    assert!(
        tail.page(Position(8), 10).is_none(),
        "{kind:?}: position 9 is not this process's"
    );
    assert_eq!(
        tail.page(Position(0), 100).expect("held"),
        log[..8],
        "the run stops at the gap"
    );
    assert_eq!(tail.page(Position(10), 10).expect("held"), log[10..]);
    let charges = tail
        .categories(Position(0), 100, &["charge"])
        .expect("held");
    assert_eq!(charges.through, Position(8), "up to the gap, not beyond");
    // A page is the tail's run, then the log past it: past the gap in one read.
    assert_eq!(
        read_page(h.store.as_ref(), Position(0), 100)
            .await
            .expect("read"),
        log,
        "{kind:?}: one page reads past the gap"
    );
    let wanted = ["charge", "plan"];
    let page = ledger::store::read_categories(h.store.as_ref(), Position(0), 100, &wanted)
        .await
        .expect("read");
    let expected: Vec<RecordedEvent> = log
        .iter()
        .filter(|e| wanted.contains(&e.stream_id.category()))
        .cloned()
        .collect();
    assert_eq!(
        page.events, expected,
        "{kind:?}: the categories past the gap"
    );
    assert_eq!((page.through, page.more), (Position(11), false));
    let mut seen = Vec::new();
    loop {
        let after = seen
            .last()
            .map_or(Position(0), |e: &RecordedEvent| e.position);
        let page = read_page(h.store.as_ref(), after, 4).await.expect("read");
        if page.is_empty() {
            break;
        }
        seen.extend(page);
    }
    assert_eq!(seen, log, "{kind:?}: every position once, in order");
}
