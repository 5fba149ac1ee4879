//! The events this process's writer committed last, kept in memory for the process's own readers
//! of the log (the projection feed, the charge recovery): what was just written need not be read
//! back from the database and decoded again.
//!
//! Only a run of consecutive positions starting right after the reader's position is answered
//! from here; anything else (older events, or a position another process wrote) is read from the
//! store. An event enters the tail after its transaction committed, so the tail holds nothing the
//! log does not; and positions have no gaps, so a run of consecutive positions is exactly what
//! the log holds there.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use super::CategoryPage;
use crate::event::{Position, RecordedEvent};

/// Events kept: most of a second of the writer at full speed on the machines measured
/// (`docs/BENCHMARKS.md`); a reader further behind reads the log.
pub const TAIL_CAPACITY: usize = 16_384;
/// Bytes kept at most (the events' canonical payload and metadata), whatever their number: a
/// run of large webhook bodies does not hold gigabytes. An event larger alone is not kept (its
/// position is then a gap: read from the log).
pub const TAIL_MAX_BYTES: usize = 64 << 20;

/// An event kept, with its size as counted against [`TAIL_MAX_BYTES`].
type Held = (Arc<RecordedEvent>, usize);

#[derive(Default)]
struct Events {
    held: VecDeque<Held>,
    bytes: usize,
}

/// The last events committed by this process's writer, in position order (maybe with gaps
/// where other processes appended).
pub struct Tail {
    events: Mutex<Events>,
    capacity: usize,
    max_bytes: usize,
}

impl Tail {
    #[must_use]
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Tail {
            events: Mutex::new(Events::default()),
            capacity,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps events just committed (in position order), each with its size in bytes. Events at
    /// or before the last one held cannot follow it: the tail then starts again from them.
    pub(crate) fn push(&self, committed: Vec<(RecordedEvent, usize)>) {
        if self.capacity == 0 {
            return;
        }
        // Allocated before and freed after the lock: readers wait for none of it.
        let fresh: Vec<Held> = committed
            .into_iter()
            .map(|(e, bytes)| (Arc::new(e), bytes))
            .collect();
        let mut gone: Vec<Held> = Vec::new();
        {
            let mut events = self.lock();
            for (e, bytes) in fresh {
                if events
                    .held
                    .back()
                    .is_some_and(|(last, _)| last.position >= e.position)
                {
                    gone.extend(events.held.drain(..));
                    events.bytes = 0;
                }
                if bytes > self.max_bytes {
                    gone.push((e, bytes));
                    continue;
                }
                events.bytes += bytes;
                events.held.push_back((e, bytes));
                while events.held.len() > self.capacity || events.bytes > self.max_bytes {
                    let Some(old) = events.held.pop_front() else {
                        break;
                    };
                    events.bytes -= old.1;
                    gone.push(old);
                }
            }
        }
        drop(gone);
    }

    /// The held events that follow `after` without a gap, up to `limit` of those `keep` accepts;
    /// `None` when the tail does not hold the position right after `after`. Also answers the
    /// last position looked at and whether the limit stopped the run.
    fn run(
        &self,
        after: Position,
        limit: usize,
        keep: impl Fn(&RecordedEvent) -> bool,
    ) -> Option<(Vec<RecordedEvent>, Position, bool)> {
        let mut picked = Vec::new();
        let mut through = after;
        {
            let events = self.lock();
            let held = &events.held;
            let start = held.partition_point(|(e, _)| e.position <= after);
            if held.get(start)?.0.position != after.next() {
                return None;
            }
            for (e, _) in held.range(start..) {
                if e.position != through.next() || picked.len() == limit {
                    break;
                }
                through = e.position;
                if keep(e) {
                    picked.push(e.clone());
                }
            }
        }
        // As the stores answer: a page that reached its limit may have more after it.
        let full = picked.len() == limit;
        // Copied outside the lock: the writer adds to the tail after every commit.
        let events = picked.iter().map(|e| RecordedEvent::clone(e)).collect();
        Some((events, through, full))
    }

    /// Up to `limit` events after `after`, as [`super::EventStore::read_page_raw`] would answer
    /// the first of them (maybe fewer: the run ends where the tail has a gap or ends); `None`
    /// when the next position is not held.
    #[must_use]
    pub fn page(&self, after: Position, limit: u32) -> Option<Vec<RecordedEvent>> {
        if limit == 0 {
            return None;
        }
        self.run(after, limit as usize, |_| true)
            .map(|(events, _, _)| events)
    }

    /// [`super::EventStore::read_categories`] over the held run after `after`: `through` is
    /// the last position looked at (the run's end, or the last event taken when the limit
    /// stopped it); `None` when the next position is not held.
    #[must_use]
    pub fn categories(
        &self,
        after: Position,
        limit: u32,
        categories: &[&str],
    ) -> Option<CategoryPage> {
        if limit == 0 {
            return None;
        }
        self.run(after, limit as usize, |e| {
            categories.contains(&e.stream_id.category())
        })
        .map(|(events, through, more)| CategoryPage {
            events,
            through,
            more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Hash;
    use crate::event::{Metadata, StreamId};

    /// An event of `category` at `position`, counted as 10 bytes.
    fn at(position: i64, category: &str) -> (RecordedEvent, usize) {
        let e = RecordedEvent {
            position: Position(position),
            event_id: uuid::Uuid::new_v4(),
            stream_id: StreamId::new(format!("{category}-{position}")).expect("stream id"),
            stream_version: 1,
            event_type: "Happened".into(),
            schema_version: 1,
            payload: serde_json::json!({ "n": position }),
            metadata: Metadata::default(),
            occurred_at: chrono::DateTime::UNIX_EPOCH,
            recorded_at: chrono::DateTime::UNIX_EPOCH,
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
        };
        (e, 10)
    }

    fn positions(events: &[RecordedEvent]) -> Vec<i64> {
        events.iter().map(|e| e.position.0).collect()
    }

    #[test]
    fn only_a_run_from_the_next_position_is_answered() {
        let tail = Tail::new(100, 1_000);
        tail.push((1..=3).map(|p| at(p, "charge")).collect());
        // 4 and 5 written by another process.
        tail.push((6..=7).map(|p| at(p, "charge")).collect());
        assert_eq!(positions(&tail.page(Position(0), 10).unwrap()), [1, 2, 3]);
        assert_eq!(positions(&tail.page(Position(1), 1).unwrap()), [2]);
        assert!(tail.page(Position(3), 10).is_none(), "4 is not held");
        assert!(tail.page(Position(4), 10).is_none(), "5 is not held");
        assert_eq!(positions(&tail.page(Position(5), 10).unwrap()), [6, 7]);
        assert!(
            tail.page(Position(7), 10).is_none(),
            "nothing after the last"
        );
        assert!(
            tail.page(Position(0), 0).is_none(),
            "a limit of 0 reads nothing"
        );
    }

    #[test]
    fn categories_look_through_the_run_and_stop_at_the_limit() {
        let tail = Tail::new(100, 1_000);
        let kinds = ["charge", "invoice", "charge", "plan", "plan", "charge"];
        tail.push(
            kinds
                .iter()
                .enumerate()
                .map(|(i, c)| at(i as i64 + 1, c))
                .collect(),
        );
        let page = |after: i64, limit: u32| {
            let p = tail
                .categories(Position(after), limit, &["charge"])
                .unwrap();
            (positions(&p.events), p.through.0, p.more)
        };
        assert_eq!(page(0, 10), (vec![1, 3, 6], 6, false));
        assert_eq!(page(0, 1), (vec![1], 1, true));
        assert_eq!(page(0, 2), (vec![1, 3], 3, true));
        // The limit reached with the run's last event: there may be more (as the stores say).
        assert_eq!(page(0, 3), (vec![1, 3, 6], 6, true));
        assert_eq!(page(3, 10), (vec![6], 6, false));
        assert_eq!(page(3, 1), (vec![6], 6, true));
        let none = tail.categories(Position(3), 10, &["invoice"]).unwrap();
        assert_eq!(
            (none.events.len(), none.through, none.more),
            (0, Position(6), false)
        );
    }

    #[test]
    fn the_oldest_go_first_and_a_step_back_starts_again() {
        let tail = Tail::new(3, 1_000);
        tail.push((1..=5).map(|p| at(p, "charge")).collect());
        assert!(tail.page(Position(1), 10).is_none(), "2 was let go");
        assert_eq!(positions(&tail.page(Position(2), 10).unwrap()), [3, 4, 5]);
        // A position at or before the last held (a log rebuilt under the process): the old
        // events are not mixed with the new.
        tail.push(vec![at(4, "charge")]);
        assert_eq!(positions(&tail.page(Position(3), 10).unwrap()), [4]);
        assert!(tail.page(Position(2), 10).is_none());
        let none = Tail::new(0, 1_000);
        none.push(vec![at(1, "charge")]);
        assert!(
            none.page(Position(0), 10).is_none(),
            "capacity 0 keeps nothing"
        );
    }

    #[test]
    fn bytes_are_bounded_and_an_event_too_large_is_a_gap() {
        let tail = Tail::new(100, 35);
        tail.push((1..=5).map(|p| at(p, "charge")).collect());
        assert!(
            tail.page(Position(1), 10).is_none(),
            "30 bytes kept: 3, 4, 5"
        );
        assert_eq!(positions(&tail.page(Position(2), 10).unwrap()), [3, 4, 5]);
        let (big, _) = at(6, "charge");
        tail.push(vec![(big, 36), at(7, "charge")]);
        assert_eq!(positions(&tail.page(Position(3), 10).unwrap()), [4, 5]);
        assert!(tail.page(Position(5), 10).is_none(), "6 was not kept");
        assert_eq!(positions(&tail.page(Position(6), 10).unwrap()), [7]);
    }
}
