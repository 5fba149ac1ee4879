//! What this process's writer knows of the log after its own last batch, and the append that
//! trusts that knowledge only once the database has checked it under the head lock (migration
//! `0004_append_checked`): one round trip per batch instead of five (`BEGIN`, the head lock,
//! the stream versions, the insert, `COMMIT`) while no other process appends.
//!
//! What the database checks is only what the head and the unique keys do not already prove.
//! The versions remembered are exact as of the head remembered (they are forgotten whenever a
//! head is read that this writer did not leave), so a head found unchanged under the lock makes
//! every one of them exact: no probe. A stream not known and expected absent (`NoStream`) is
//! planned from version 1, and an idempotency key taken: the insert then breaks the unique key
//! `(stream_id, stream_version)` or `(api_key_id, key)`, the statement writes nothing, and the
//! batch is planned again under the lock. Only a stream not known and expected at a version
//! (`Exact(n)`, n ≥ 1) is probed: its version could be below n, and nothing unique would object.

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
    /// The streams of the batch neither known nor expected absent, with their expected version.
    streams: Vec<String>,
    versions: Vec<i64>,
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
        for r in requests.iter().map(|p| &p.request) {
            let id = r.stream_id.as_str();
            if !seen.insert(id) {
                continue;
            }
            let version = match (self.versions.get(id).copied(), r.expected) {
                (Some(v), _) => v,
                (None, ExpectedVersion::NoStream) => 0,
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
    // The idempotency keys are checked by their unique key (above).
    .bind(Vec::<String>::new())
    .bind(Vec::<String>::new());
    let query = super::bind_rows(query, rows)
        .bind(plan.head_position.0)
        .bind(plan.head_hash.0.to_vec());
    let row = super::bind_idempotency(query, ids).fetch_one(pool).await?;
    row.try_get(0)
}
