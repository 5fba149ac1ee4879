//! Exactly-once application whatever the delivery, on both backends; replay equals live.

use std::collections::BTreeMap;
use std::sync::Arc;

use commands::charge::{self, Charge, ChargeEvent};
use commands::stored::decode_stream;
use ledger::event::{Position, RecordedEvent, StreamId};
use ledger::store::{EventStore, read_page};
use projections::projection::Projection;
use projections::store::{Indexes, NEXT, ReadStore};
use projections::worker::local::{LocalFeed, Until};
use projections::worker::{apply, passes_over};

use super::support::{KINDS, Kind, TestStore, at, charge, refund};

fn projections() -> Vec<Arc<dyn Projection>> {
    projections::all()
}

fn refs(all: &[Arc<dyn Projection>]) -> Vec<&dyn Projection> {
    all.iter().map(|p| p.as_ref()).collect()
}

/// Charges in two currencies, some failed, some refunded. Answers the expected cash per currency.
async fn some_charges(store: &dyn EventStore) -> BTreeMap<&'static str, i64> {
    let mut cash = BTreeMap::new();
    for i in 0..12u32 {
        let (currency, amount) = if i % 3 == 0 {
            ("jpy", 500)
        } else {
            ("usd", 1_999)
        };
        let ok = i % 4 != 3;
        let id = charge(store, amount, currency, ok, at(i)).await;
        if ok {
            *cash.entry(currency).or_insert(0) += amount;
            if i % 5 == 0 {
                refund(store, id, 100, at(i + 1)).await;
                *cash.entry(currency).or_insert(0) -= 100;
            }
        }
    }
    cash
}

async fn everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    read_page(store, Position(0), 10_000)
        .await
        .expect("read the log")
}

/// The charges read model holds, for every charge stream, what the write side folds.
async fn assert_charges_match(store: &dyn EventStore, read: &ReadStore, log: &[RecordedEvent]) {
    let mut streams: Vec<&StreamId> = log.iter().map(|e| &e.stream_id).collect();
    streams.sort();
    streams.dedup();
    for stream in streams {
        let events = store.read_stream(stream).await.expect("read stream");
        let decoded: Vec<ChargeEvent> = decode_stream(&events).expect("decode");
        let mut state: Option<Charge> = None;
        for (e, r) in decoded.iter().zip(&events) {
            state = charge::evolve(state, e, r.occurred_at);
        }
        let want = state.expect("a charge");
        let id = want.id.to_string();
        let doc = read
            .get("charges", &id)
            .await
            .expect("get")
            .expect("a document");
        let got: Charge = doc.body_as().expect("a charge body");
        assert_eq!(got, want, "charge {id}");
        assert_eq!(doc.status.as_deref(), Some(want.status.as_str()));
        assert_eq!(doc.position, events.last().unwrap().position.0);
    }
}

/// Debits equal credits per currency, and cash is what the charges took.
async fn assert_books(read: &ReadStore, cash: &BTreeMap<&'static str, i64>) {
    let lines = read
        .trial_balance("journal", None)
        .await
        .expect("trial balance");
    let mut per_currency: BTreeMap<String, i64> = BTreeMap::new();
    for l in &lines {
        *per_currency.entry(l.currency.clone()).or_insert(0) += l.debit - l.credit;
    }
    assert!(per_currency.values().all(|v| *v == 0), "{lines:?}");
    for (currency, want) in cash {
        let got: i64 = lines
            .iter()
            .filter(|l| l.currency == *currency && l.account == "cash:sandbox")
            .map(|l| l.debit - l.credit)
            .sum();
        assert_eq!(got, *want, "cash in {currency}");
    }
}

#[tokio::test]
async fn every_delivery_order_applies_each_event_once() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        let cash = some_charges(s.events.as_ref()).await;
        let log = everything(s.events.as_ref()).await;
        let n = log.len();
        let head = log.last().unwrap().position.0;
        for p in &all {
            // A later slice first: the gap before it is read from the store.
            let late = apply(&s.read, s.events.as_ref(), p.as_ref(), &log[n / 2..n - 3])
                .await
                .expect("apply");
            assert_eq!(late.filled, n / 2, "{kind:?} {}", p.name());
            assert_eq!(late.checkpoint, log[n - 4].position.0);
            // Redelivery of everything, shuffled and duplicated: only the tail is new.
            let mut again: Vec<RecordedEvent> = log.iter().rev().cloned().collect();
            again.extend(log[..5].iter().cloned());
            let rest = apply(&s.read, s.events.as_ref(), p.as_ref(), &again)
                .await
                .expect("apply");
            assert_eq!((rest.applied, rest.filled), (3, 0), "{kind:?} {}", p.name());
            assert_eq!(rest.skipped, again.len() - 3);
            assert_eq!(rest.checkpoint, head);
            let none = apply(&s.read, s.events.as_ref(), p.as_ref(), &log)
                .await
                .expect("apply");
            assert_eq!((none.applied, none.skipped), (0, n));
            assert_eq!(s.read.checkpoint(p.name()).await.unwrap(), head);
        }
        assert_charges_match(s.events.as_ref(), &s.read, &log).await;
        assert_books(&s.read, &cash).await;
        let succeeded = s.read.all_lines("journal").await.unwrap();
        let posted: Vec<i64> = succeeded.iter().map(|l| l.position).collect();
        let mut unique = posted.clone();
        unique.dedup();
        assert_eq!(
            unique.len() * 2,
            posted.len(),
            "two lines per money event, once"
        );
    }
}

#[tokio::test]
async fn two_workers_of_one_projection_apply_each_event_once() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        let cash = some_charges(s.events.as_ref()).await;
        let log = Arc::new(everything(s.events.as_ref()).await);
        let journal: Arc<dyn Projection> = Arc::new(projections::journal::Journal);
        let mut workers = Vec::new();
        for w in 0..2usize {
            let (read, events, log, journal) = (
                s.read.clone(),
                s.events.clone(),
                log.clone(),
                journal.clone(),
            );
            workers.push(tokio::spawn(async move {
                // Each delivers the log in slices of its own size, racing the other.
                for chunk in log.chunks(3 + w * 4) {
                    apply(&read, events.as_ref(), journal.as_ref(), chunk)
                        .await
                        .expect("apply");
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        assert_eq!(
            s.read.checkpoint("journal").await.unwrap(),
            log.last().unwrap().position.0,
            "{kind:?}"
        );
        assert_books(&s.read, &cash).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_feeds_catching_up_at_once_apply_each_event_once() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        let cash = some_charges(s.events.as_ref()).await;
        // Two feeds, small pages of different sizes: each folds pages ahead of its commits,
        // and finds the checkpoint moved under them by the other time and again.
        let feeds: Vec<_> = [3u32, 5]
            .into_iter()
            .map(|size| {
                let mut feed =
                    LocalFeed::new(s.read.clone(), s.events.clone(), all.clone()).page_size(size);
                tokio::spawn(async move { feed.catch_up().await.expect("catch up") })
            })
            .collect();
        for f in feeds {
            f.await.expect("feed");
        }
        let head = s.events.head().await.unwrap().position.0;
        for p in &all {
            assert_eq!(s.read.checkpoint(p.name()).await.unwrap(), head, "{kind:?}");
        }
        assert_books(&s.read, &cash).await;
        // The same rows as one feed alone builds.
        let next = s.read.with_prefix(NEXT);
        next.drop_tables(&refs(&all)).await.expect("drop");
        next.ensure(&refs(&all)).await.expect("ensure next");
        LocalFeed::new(next.clone(), s.events.clone(), all.clone())
            .catch_up()
            .await
            .expect("alone");
        for p in &all {
            assert_eq!(
                s.read.all_docs(p.name()).await.unwrap(),
                next.all_docs(p.name()).await.unwrap(),
                "{kind:?} {}",
                p.name()
            );
        }
        assert_eq!(
            s.read.all_lines("journal").await.unwrap(),
            next.all_lines("journal").await.unwrap(),
            "{kind:?}: each journal line once"
        );
    }
}

#[tokio::test]
async fn replay_rebuilds_the_live_rows_and_swaps_them_in() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        some_charges(s.events.as_ref()).await;
        // Live: small pages, as a follower would see them.
        let mut live = LocalFeed::new(s.read.clone(), s.events.clone(), all.clone()).page_size(7);
        live.catch_up().await.expect("live");
        let next = s.read.with_prefix(NEXT);
        next.drop_tables(&refs(&all)).await.expect("drop");
        // Built as `billing replay` does: secondary indexes once the rows are in.
        next.ensure_with(&refs(&all), Indexes::Later)
            .await
            .expect("ensure next");
        let mut replay = LocalFeed::new(next.clone(), s.events.clone(), all.clone());
        replay.catch_up().await.expect("replay");
        next.build_indexes(&refs(&all)).await.expect("indexes");
        for p in &all {
            let (a, b) = (
                s.read.all_docs(p.name()).await.unwrap(),
                next.all_docs(p.name()).await.unwrap(),
            );
            if matches!(p.name(), "charges" | "journal") {
                assert!(!a.is_empty(), "{kind:?} {} has rows", p.name());
            }
            assert_eq!(a, b, "{kind:?} {}", p.name());
        }
        assert_eq!(
            s.read.all_lines("journal").await.unwrap(),
            next.all_lines("journal").await.unwrap()
        );
        // More events, then the swap: the live tables are the rebuilt ones, and the live feed
        // goes on from the rebuilt checkpoint.
        charge(s.events.as_ref(), 777, "usd", true, at(60)).await;
        next.swap_in(&s.read, &refs(&all)).await.expect("swap");
        let head = s.events.head().await.unwrap().position.0;
        assert!(s.read.checkpoint("charges").await.unwrap() < head);
        live.catch_up().await.expect("live after swap");
        assert_eq!(s.read.checkpoint("charges").await.unwrap(), head);
        let fresh = s.read.with_prefix("rmfresh_");
        fresh.ensure(&refs(&all)).await.expect("ensure fresh");
        for p in &all {
            assert_eq!(
                s.read.index_count(p.as_ref()).await.unwrap(),
                fresh.index_count(p.as_ref()).await.unwrap(),
                "{kind:?} {}: the swapped-in tables have every index",
                p.name()
            );
        }
        assert!(
            next.all_docs("charges").await.is_err(),
            "the rebuilt table was moved"
        );
        assert_charges_match(
            s.events.as_ref(),
            &s.read,
            &everything(s.events.as_ref()).await,
        )
        .await;
    }
}

/// Caught up, a round touches no read-model transaction: were it to open one per projection
/// (as it once did, every 20 ms while idle), it would wait here on a checkpoint held elsewhere.
#[tokio::test]
async fn a_round_with_nothing_new_opens_no_transaction() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        some_charges(s.events.as_ref()).await;
        let mut feed = LocalFeed::new(s.read.clone(), s.events.clone(), all.clone());
        assert!(feed.catch_up().await.expect("catch up") > 0);
        // Another transaction holds a checkpoint row (PostgreSQL) or the write lock (SQLite).
        let held = s
            .read
            .begin(all[0].name())
            .await
            .expect("hold a checkpoint");
        let round = tokio::time::timeout(std::time::Duration::from_secs(3), feed.round()).await;
        assert!(
            matches!(round, Ok(Ok(0))),
            "{kind:?}: a caught-up round must answer at once with nothing applied, got {round:?}"
        );
        held.rollback().await.expect("release");
    }
}

/// `passes_over`: only a contiguous run after the checkpoint that reads and changes nothing.
#[tokio::test]
async fn a_page_passes_over_a_projection_only_if_it_follows_and_changes_nothing() {
    let s = TestStore::open(Kind::Sqlite).await;
    let id = charge(s.events.as_ref(), 1_000, "usd", true, at(0)).await;
    refund(s.events.as_ref(), id, 100, at(1)).await;
    charge(s.events.as_ref(), 500, "usd", true, at(2)).await;
    let log = everything(s.events.as_ref()).await;
    let refunds = projections::pointers::Refunds;
    let charges = projections::views::charges();
    let (first_refund, last) = (3, log.len() as i64);
    assert_eq!(log[2].event_type, "RefundRequested");
    // After the refund: two charge events, nothing for refunds.
    assert!(passes_over(&refunds, &log, first_refund + 1));
    // With the refund in it, or with a gap before it (a checkpoint behind the page), not.
    assert!(!passes_over(&refunds, &log, 0));
    assert!(!passes_over(&refunds, &log[5..], first_refund + 1));
    // The charges read model reads every charge event.
    assert!(!passes_over(&charges, &log, first_refund + 1));
    // Nothing after the checkpoint: nothing to pass over.
    assert!(!passes_over(&refunds, &log, last));
}

/// Events that change none of a projection's rows still move its checkpoint (a read with
/// `min_position` waits on it), in the same round as the others'.
#[tokio::test]
async fn a_round_moves_the_checkpoints_of_projections_it_changes_nothing_of() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        let mut feed = LocalFeed::new(s.read.clone(), s.events.clone(), all.clone());
        charge(s.events.as_ref(), 1_000, "usd", true, at(0)).await;
        let head = s.events.head().await.unwrap().position.0;
        assert_eq!(feed.round().await.expect("round"), 2);
        for p in &all {
            assert_eq!(
                s.read.checkpoint(p.name()).await.unwrap(),
                head,
                "{kind:?} {}",
                p.name()
            );
        }
        assert!(s.read.all_docs("refunds").await.unwrap().is_empty());
    }
}

/// A projection whose checkpoint moved back under the feed (a replay's swap, an asynchronous
/// commit lost in a crash) is applied again from there, even by a page that changes none of its
/// rows — not moved over what it has lost.
#[tokio::test]
async fn a_checkpoint_moved_back_under_the_feed_is_not_moved_over_the_gap() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        let all = projections();
        s.read.ensure(&refs(&all)).await.expect("ensure");
        let mut feed = LocalFeed::new(s.read.clone(), s.events.clone(), all.clone());
        let id = charge(s.events.as_ref(), 1_000, "usd", true, at(0)).await;
        refund(s.events.as_ref(), id, 100, at(1)).await;
        feed.catch_up().await.expect("catch up");
        let refunds = s.read.all_docs("refunds").await.unwrap();
        assert_eq!(refunds.len(), 1, "{kind:?}");
        // The refunds read model loses everything: no rows, checkpoint 0.
        let mut lost = projections::projection::ReadSet::default();
        let mut tx = s.read.begin("refunds").await.expect("begin");
        tx.load(&mut lost, vec![refunds[0].0.clone()])
            .await
            .expect("load");
        lost.remove(&refunds[0].0);
        tx.commit(&lost, 0).await.expect("commit");
        // A charge without refunds: nothing for the refunds read model.
        charge(s.events.as_ref(), 500, "usd", true, at(2)).await;
        let head = s.events.head().await.unwrap().position.0;
        while feed.round().await.expect("round") > 0 {}
        assert_eq!(
            s.read.checkpoint("refunds").await.unwrap(),
            head,
            "{kind:?}"
        );
        assert_eq!(
            s.read.all_docs("refunds").await.unwrap().len(),
            1,
            "{kind:?}: the refund is applied again, not skipped"
        );
    }
}

#[tokio::test]
async fn a_replay_to_a_position_stops_there() {
    let s = TestStore::open(Kind::Sqlite).await;
    let all = projections();
    s.read.ensure(&refs(&all)).await.expect("ensure");
    some_charges(s.events.as_ref()).await;
    let mut feed = LocalFeed::new(s.read.clone(), s.events.clone(), all.clone())
        .page_size(4)
        .until(Until::Position(9));
    feed.catch_up().await.expect("replay");
    for p in &all {
        assert_eq!(
            s.read.checkpoint(p.name()).await.unwrap(),
            9,
            "{}",
            p.name()
        );
    }
    let until_time = LocalFeed::new(s.read.clone(), s.events.clone(), all.clone())
        .until(Until::RecordedAt(
            chrono::Utc::now() - chrono::Duration::days(1),
        ))
        .catch_up()
        .await
        .expect("nothing recorded a day ago");
    assert_eq!(until_time, 0);
}

#[tokio::test]
async fn a_long_gap_is_filled_over_several_batches() {
    use ledger::event::{AppendRequest, ExpectedVersion, NewEvent};
    let s = TestStore::open(Kind::Sqlite).await;
    let all = projections();
    s.read.ensure(&refs(&all)).await.expect("ensure");
    // 21,000 events no projection reads, then a charge.
    for i in 0..21 {
        let stream = StreamId::new(format!("noise-{i}")).unwrap();
        let events = (0..1_000)
            .map(|n| NewEvent::new("NoiseRecorded", serde_json::json!({ "n": n }), at(0)))
            .collect();
        s.events
            .append(AppendRequest::new(stream, ExpectedVersion::Any, events))
            .await
            .expect("append");
    }
    charge(s.events.as_ref(), 500, "usd", true, at(1)).await;
    let head = s.events.head().await.unwrap().position.0;
    let last = read_page(s.events.as_ref(), Position(head - 1), 1)
        .await
        .unwrap();
    let journal = projections::journal::Journal;
    // Only the newest event is delivered: the gap before it is read from the store, 20,000
    // events per batch at most, and the delivered event waits for the gap to be filled.
    let first = apply(&s.read, s.events.as_ref(), &journal, &last)
        .await
        .unwrap();
    assert_eq!((first.filled, first.checkpoint), (20_000, 20_000));
    let second = apply(&s.read, s.events.as_ref(), &journal, &last)
        .await
        .unwrap();
    assert_eq!(second.checkpoint, head);
    assert_eq!(second.filled, usize::try_from(head - 20_001).unwrap());
    let lines = s.read.all_lines("journal").await.unwrap();
    assert_eq!(lines.len(), 2, "the charge posted once");
}

#[tokio::test]
async fn a_cursor_starts_at_zero_moves_forward_only_and_is_not_a_projection_checkpoint() {
    for kind in KINDS {
        let s = TestStore::open(kind).await;
        assert_eq!(s.read.cursor("webhook_reactor").await.unwrap(), 0);
        s.read.save_cursor("webhook_reactor", 41).await.unwrap();
        s.read.save_cursor("webhook_reactor", 17).await.unwrap();
        assert_eq!(
            s.read.cursor("webhook_reactor").await.unwrap(),
            41,
            "{kind:?}: never back"
        );
        s.read.save_cursor("webhook_reactor", 42).await.unwrap();
        assert_eq!(s.read.cursor("webhook_reactor").await.unwrap(), 42);
        assert_eq!(s.read.cursor("other").await.unwrap(), 0);
        assert!(
            !s.read
                .checkpoints_all()
                .await
                .unwrap()
                .contains_key("webhook_reactor"),
            "{kind:?}: a cursor is not counted in projection lag"
        );
    }
}

/// A charge document is its stream's state: the worker does not ask the store for one whose
/// stream starts in the batch, and inserts it rather than overwrites. So a row no event of the
/// log wrote stops the projection, with nothing of the batch kept, instead of being silently
/// replaced — on both backends.
#[tokio::test]
async fn a_document_born_in_the_batch_is_inserted_never_written_over_a_stray_row() {
    for kind in KINDS {
        born_over_a_stray_row(kind).await;
    }
}

async fn born_over_a_stray_row(kind: Kind) {
    use projections::projection::{Doc, ReadSet, body_of};
    let s = TestStore::open(kind).await;
    let all = projections();
    s.read.ensure(&refs(&all)).await.expect("ensure");
    let id = charge(s.events.as_ref(), 500, "usd", true, at(1))
        .await
        .to_string();
    // The stray row holds a readable charge (this one's own state), so only its being asked
    // for and upserted could let the batch through.
    let stream = StreamId::new(format!("charge-{id}")).unwrap();
    let events = s.events.read_stream(&stream).await.expect("read stream");
    let decoded: Vec<ChargeEvent> = decode_stream(&events).expect("decode");
    let state = decoded.iter().zip(&events).fold(None, |state, (e, r)| {
        charge::evolve(state, e, r.occurred_at)
    });
    let mut stray = ReadSet::default();
    stray.load(id.clone(), None);
    stray.put(
        id.clone(),
        Doc {
            customer: None,
            status: Some("stray".into()),
            created: "2026-03-01T00:00:00.000000Z".into(),
            position: 0,
            body: body_of(&state.expect("a charge")).unwrap(),
        },
    );
    let tx = s.read.begin("charges").await.expect("begin");
    tx.commit(&stray, 0).await.expect("plant a stray row");

    let log = everything(s.events.as_ref()).await;
    let charges = projections::views::charges();
    let outcome = apply(&s.read, s.events.as_ref(), &charges, &log).await;
    assert!(outcome.is_err(), "applied over a stray row: {outcome:?}");
    assert_eq!(s.read.checkpoint("charges").await.unwrap(), 0);
    let doc = s.read.get("charges", &id).await.unwrap().expect("the row");
    assert_eq!(
        doc.status.as_deref(),
        Some("stray"),
        "nothing of the batch kept"
    );

    // Once the stray row is gone, the same batch applies.
    let mut gone = ReadSet::default();
    gone.load(id.clone(), Some(doc));
    gone.remove(&id);
    let tx = s.read.begin("charges").await.expect("begin");
    tx.commit(&gone, 0).await.expect("remove the stray row");
    apply(&s.read, s.events.as_ref(), &charges, &log)
        .await
        .expect("applies");
    assert_charges_match(s.events.as_ref(), &s.read, &log).await;
}
