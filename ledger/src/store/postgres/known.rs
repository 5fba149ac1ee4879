//! What this process's writer knows of the log after its own last batch, and the append that
//! trusts that knowledge only once the database has checked it under the head lock (migration
//! `0004_append_checked`): one round trip per batch instead of five (`BEGIN`, the head lock,
//! the stream versions, the insert, `COMMIT`) while no other process appends.
//!
//! What the database checks is only what the head and the unique keys do not already prove.
//! The versions remembered are exact as of the head remembered (they are forgotten whenever a
//! head is read that this writer did not leave), so a head found unchanged under the lock makes
//! every one of them exact: no probe. A stream not known and expected absent (`NoStream`) that
//! the plan writes starts at version 1, and an idempotency key the plan writes is inserted: if
//! the stream exists or the key is taken, the insert breaks the unique key
//! `(stream_id, stream_version)` or `(api_key_id, key)`, the statement writes nothing, and the
//! batch is planned again under the lock. What the plan does not write is checked as before:
//! a stream not known and expected at a version (`Exact(n)`: it could be below n, and nothing
//! unique would object), a stream taken as absent that the plan wrote nothing to (its requests
//! were refused for another reason), and the keys of refused requests (a taken key would have
//! been the refusal's reason) — so every refusal, too, is the one the transaction would give.

use std::collections::{HashMap, HashSet};

use sqlx::{PgPool, Row};

use crate::chain::Hash;
use crate::event::{ExpectedVersion, Position};
use crate::store::plan::{BatchState, Plan, Prepared};

/// Stream versions remembered at most; past it the memory starts again empty.
const VERSIONS_MAX: usize = 100_000;

/// The head and stream versions as this process last saw them: after its own batches, or read
/// under the head lock. Possibly stale (another process appended since), never trusted as is;
/// but every version is exact as of `head`.
#[derive(Default)]
pub(super) struct Known {
    head: Option<(Position, Hash)>,
    versions: HashMap<String, i64>,
}

/// What the database must find for a guessed [`BatchState`] to be right (besides the unique
/// keys the insert itself meets).
pub(super) struct Checks {
    head: (Position, Hash),
    /// Streams with the version they were taken at (0: no events): those neither known nor
    /// expected absent, and (after [`Checks::for_plan`]) those taken as absent and not written.
    streams: Vec<String>,
    versions: Vec<i64>,
    /// Streams not known and taken as absent (the plan writing them is their check).
    absent: Vec<String>,
    /// Idempotency keys of refused requests, taken as free (after [`Checks::for_plan`]).
    key_owners: Vec<String>,
    keys: Vec<String>,
}

impl Checks {
    /// What `plan` (made on the guessed state) leaves unproven by its own inserts: the streams
    /// taken as absent that it writes nothing to, and the keys of the requests it refuses.
    pub fn for_plan(mut self, requests: &[Prepared], plan: &Plan) -> Self {
        let written: HashSet<&str> = plan.rows.iter().map(|r| r.stream_id.as_str()).collect();
        for stream in std::mem::take(&mut self.absent) {
            if !written.contains(stream.as_str()) {
                self.streams.push(stream);
                self.versions.push(0);
            }
        }
        for (p, outcome) in requests.iter().zip(&plan.outcomes) {
            if let (Err(_), Some(i)) = (outcome, &p.request.idempotency) {
                self.key_owners.push(i.api_key_id.clone());
                self.keys.push(i.key.clone());
            }
        }
        self
    }
}

impl Known {
    /// The state the batch would read, guessed: the head and versions known, a stream not known
    /// taken at its first request's expectation (`NoStream`: none; `Exact(n)`: n, to be
    /// probed), every idempotency key free. `None` when nothing is known of the head or a stream
    /// of the batch is neither known nor expected at a version.
    pub fn guess(&self, requests: &[Prepared]) -> Option<(BatchState, Checks)> {
        let (head_position, head_hash) = self.head?;
        let mut versions = HashMap::new();
        let mut seen = HashSet::new();
        let mut streams = Vec::new();
        let mut guessed = Vec::new();
        let mut absent = Vec::new();
        for r in requests.iter().map(|p| &p.request) {
            let id = r.stream_id.as_str();
            if !seen.insert(id) {
                continue;
            }
            let version = match (self.versions.get(id).copied(), r.expected) {
                (Some(v), _) => v,
                (None, ExpectedVersion::NoStream) => {
                    absent.push(id.to_string());
                    0
                }
                (None, ExpectedVersion::Exact(v)) => {
                    streams.push(id.to_string());
                    guessed.push(v);
                    v
                }
                (None, ExpectedVersion::Any) => return None,
            };
            if version > 0 {
                versions.insert(id.to_string(), version);
            }
        }
        let state = BatchState {
            head_position,
            head_hash,
            versions,
            taken_keys: HashSet::new(),
        };
        let checks = Checks {
            head: (head_position, head_hash),
            streams,
            versions: guessed,
            absent,
            key_owners: Vec::new(),
            keys: Vec::new(),
        };
        Some((state, checks))
    }

    /// Remembers the state read under the head lock. A head this writer did not leave means
    /// another process appended: what is known of other streams may be stale, and is forgotten.
    pub fn read(&mut self, state: &BatchState) {
        let head = Some((state.head_position, state.head_hash));
        if self.head != head {
            self.versions.clear();
        }
        self.head = head;
        self.remember(state.versions.iter().map(|(s, v)| (s.as_str(), *v)));
    }

    /// Remembers a committed plan.
    pub fn committed(&mut self, plan: &Plan) {
        self.head = Some((plan.head_position, plan.head_hash));
        self.remember(
            plan.rows
                .iter()
                .map(|r| (r.stream_id.as_str(), r.stream_version)),
        );
    }

    /// After an error: the log's state is unknown.
    pub fn forget(&mut self) {
        self.head = None;
        self.versions.clear();
    }

    fn remember<'a>(&mut self, versions: impl Iterator<Item = (&'a str, i64)>) {
        for (stream, version) in versions {
            if self.versions.len() >= VERSIONS_MAX && !self.versions.contains_key(stream) {
                self.versions.clear();
            }
            let known = self.versions.entry(stream.to_string()).or_insert(version);
            *known = (*known).max(version);
        }
    }
}

/// Commits `plan` in one statement if the database holds what `checks` say; `false` (and
/// nothing written) when it does not.
///
/// # Errors
/// The database's: then nothing was written, or — the connection lost after sending — the
/// outcome is unknown, as with a failed `COMMIT`.
pub(super) async fn append_checked(
    pool: &PgPool,
    checks: &Checks,
    plan: &Plan,
) -> Result<bool, sqlx::Error> {
    let rows = &plan.rows;
    let ids = &plan.idempotency;
    let query = sqlx::query(
        "SELECT ledger_append_checked($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)",
    )
    .bind(checks.head.0.0)
    .bind(checks.head.1.0.to_vec())
    .bind(&checks.streams)
    .bind(&checks.versions)
    .bind(&checks.key_owners)
    .bind(&checks.keys);
    let query = super::bind_rows(query, rows)
        .bind(plan.head_position.0)
        .bind(plan.head_hash.0.to_vec());
    let row = super::bind_idempotency(query, ids).fetch_one(pool).await?;
    row.try_get(0)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::event::{AppendRequest, IdempotencyRecord, NewEvent, StreamId};
    use crate::store::plan::{plan_batch, prepare};

    fn req(stream: &str, expected: ExpectedVersion, key: Option<&str>) -> AppendRequest {
        let event = NewEvent::new("Tested", json!({}), Utc::now());
        let mut r = AppendRequest::new(StreamId::new(stream).unwrap(), expected, vec![event]);
        r.idempotency = key.map(|k| IdempotencyRecord {
            api_key_id: "key_1".into(),
            key: k.into(),
            fingerprint: "fp".into(),
            status: 200,
            body: "{}".into(),
            position: Position(0),
        });
        r
    }

    fn prepared<const N: usize>(requests: [AppendRequest; N]) -> Vec<Prepared> {
        requests.into_iter().map(|r| prepare(r).unwrap()).collect()
    }

    /// Knows the head and that `known` is at version 3.
    fn knowing() -> Known {
        Known {
            head: Some((Position(10), Hash::GENESIS)),
            versions: HashMap::from([("known".to_string(), 3)]),
        }
    }

    fn checked(known: &Known, requests: &[Prepared]) -> Checks {
        let (state, checks) = known.guess(requests).expect("a guess");
        let plan = plan_batch(state, requests, Utc::now());
        checks.for_plan(requests, &plan)
    }

    #[test]
    fn only_what_the_plan_does_not_prove_is_checked() {
        let requests = prepared([
            req("known", ExpectedVersion::Exact(3), Some("k1")),
            req("new", ExpectedVersion::NoStream, Some("k2")),
            req("unknown", ExpectedVersion::Exact(2), None),
        ]);
        let checks = checked(&knowing(), &requests);
        // `known` is exact as of the head; `new` and both keys are written (the unique keys
        // answer); `unknown` could be below 2.
        assert_eq!(checks.streams, vec!["unknown".to_string()]);
        assert_eq!(checks.versions, vec![2]);
        assert!(checks.keys.is_empty());
    }

    #[test]
    fn a_stream_taken_as_absent_and_not_written_is_checked() {
        // The second request is refused for its key (taken by the first): `x` gets no row, yet
        // the third was planned on `x` being absent.
        let requests = prepared([
            req("y", ExpectedVersion::NoStream, Some("k")),
            req("x", ExpectedVersion::NoStream, Some("k")),
            req("x", ExpectedVersion::Exact(1), None),
        ]);
        let checks = checked(&knowing(), &requests);
        assert_eq!(checks.streams, vec!["x".to_string()]);
        assert_eq!(checks.versions, vec![0]);
        assert_eq!(checks.keys, vec!["k".to_string()]);
    }

    #[test]
    fn the_keys_of_a_refused_unit_are_checked() {
        // A unit refused on its second request's version: its first request's key, had it been
        // taken, would have been the refusal. The single request after it is written.
        let mut unit = prepared([
            req("a", ExpectedVersion::NoStream, Some("k-unit")),
            req("known", ExpectedVersion::Exact(1), None),
        ]);
        unit[0].with_next = true;
        unit.push(prepare(req("b", ExpectedVersion::NoStream, Some("k-single"))).unwrap());
        let checks = checked(&knowing(), &unit);
        assert_eq!(checks.keys, vec!["k-unit".to_string()]);
        assert_eq!(checks.streams, vec!["a".to_string()]);
    }
}
