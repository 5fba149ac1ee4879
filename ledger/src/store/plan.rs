//! The pure heart of an append batch: given the head of the log, the current versions of the
//! streams involved and the idempotency keys already taken, decide which requests are recorded,
//! at which positions, with which hashes. Both backends call this inside their transaction, so
//! the two stores cannot disagree on what an append means.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::AppendError;
use crate::chain::{EventFields, Hash, canonical_json, event_hash, to_micros};
use crate::event::{
    AppendRequest, Committed, ExpectedVersion, IdempotencyRecord, Position, RecordedEvent,
};

/// Largest number of events in one request.
pub const REQUEST_MAX_EVENTS: usize = 1_000;
/// Largest canonical payload of one event, in bytes.
pub const EVENT_MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Longest event type name, in bytes.
pub const EVENT_TYPE_MAX_BYTES: usize = 200;

/// What the transaction read before planning.
pub(crate) struct BatchState {
    pub head_position: Position,
    pub head_hash: Hash,
    /// Current version of each stream named in the batch that exists.
    pub versions: HashMap<String, i64>,
    /// `(api_key_id, key)` pairs already recorded.
    pub taken_keys: HashSet<(String, String)>,
}

/// One event ready to insert.
pub(crate) struct Row {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: String,
    pub metadata: String,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// A request checked and encoded on the caller's task, before it reaches the writer: the
/// writer's critical section (while the head is locked) only numbers and hashes.
pub(crate) struct Prepared {
    pub request: AppendRequest,
    /// Canonical payload and metadata JSON of each event.
    encoded: Vec<(String, String)>,
    /// Recorded only together with the next request (an atomic append of several streams).
    pub with_next: bool,
}

/// Checks a request on its own and encodes its JSON once.
pub(crate) fn prepare(request: AppendRequest) -> Result<Prepared, AppendError> {
    let encoded = validate(&request)?;
    Ok(Prepared {
        request,
        encoded,
        with_next: false,
    })
}

/// The requests split into the units recorded or refused as a whole: one request, or a run of
/// requests joined by `with_next`.
pub(crate) fn units(requests: &[Prepared]) -> impl Iterator<Item = &[Prepared]> {
    let mut rest = requests;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let len = rest
            .iter()
            .position(|p| !p.with_next)
            .map_or(rest.len(), |i| i + 1);
        let (unit, tail) = rest.split_at(len);
        rest = tail;
        Some(unit)
    })
}

pub(crate) struct Plan {
    pub rows: Vec<Row>,
    pub idempotency: Vec<IdempotencyRecord>,
    pub outcomes: Vec<Result<Committed, AppendError>>,
    pub head_position: Position,
    pub head_hash: Hash,
}

/// What a backend answers for a batch: each request's outcome, and the rows it committed (in
/// position order; none when nothing was written).
pub(crate) struct Written {
    pub outcomes: Vec<Result<Committed, AppendError>>,
    pub rows: Vec<Row>,
}

impl Written {
    /// Nothing was written: only answers (refusals).
    pub fn nothing(outcomes: Vec<Result<Committed, AppendError>>) -> Self {
        Written {
            outcomes,
            rows: Vec::new(),
        }
    }
}

impl Plan {
    /// The plan once committed.
    pub fn written(self) -> Written {
        Written {
            outcomes: self.outcomes,
            rows: self.rows,
        }
    }
}

/// The events of a committed batch as the log now holds them, each with the size of its
/// canonical payload and metadata: each accepted request's events (their payload and metadata
/// taken from the request) with the position, version, time and hashes of their rows. `first`
/// is each request's first position if it was recorded. Empty if the rows do not match the
/// requests one for one, or a text does not read back (nothing is guessed).
pub(crate) fn recorded(
    requests: &mut [Prepared],
    first: &[Option<Position>],
    rows: Vec<Row>,
) -> Vec<(RecordedEvent, usize)> {
    let mut out = Vec::with_capacity(rows.len());
    let mut rows = rows.into_iter();
    for (prepared, first) in requests.iter_mut().zip(first) {
        let Some(first) = first else { continue };
        let stream_id = &prepared.request.stream_id;
        for (j, event) in prepared.request.events.iter_mut().enumerate() {
            let Some(row) = rows.next() else {
                return Vec::new();
            };
            let expected = i64::try_from(j).ok().and_then(|j| first.0.checked_add(j));
            if row.event_id != event.event_id
                || Some(row.position) != expected
                || row.stream_id != stream_id.as_str()
            {
                return Vec::new();
            }
            // A float reads back from the log as its canonical text says (a whole one in
            // exponent form as an integer), and metadata fields this build does not name may
            // read back as named ones: those are taken from the text, as a reader of the log
            // gets them.
            let mut payload = std::mem::take(&mut event.payload);
            if has_float(&payload) {
                let Ok(read) = serde_json::from_str(&row.payload) else {
                    return Vec::new();
                };
                payload = read;
            }
            let mut metadata = std::mem::take(&mut event.metadata);
            if !metadata.other.is_empty() {
                let Ok(read) = serde_json::from_str(&row.metadata) else {
                    return Vec::new();
                };
                metadata = read;
            }
            let bytes = row.payload.len() + row.metadata.len();
            out.push((
                RecordedEvent {
                    position: Position(row.position),
                    event_id: row.event_id,
                    stream_id: stream_id.clone(),
                    stream_version: row.stream_version,
                    event_type: row.event_type,
                    schema_version: row.schema_version,
                    payload,
                    metadata,
                    occurred_at: row.occurred_at,
                    recorded_at: row.recorded_at,
                    prev_hash: row.prev_hash,
                    hash: row.hash,
                },
                bytes,
            ));
        }
    }
    if rows.next().is_some() {
        return Vec::new();
    }
    out
}

/// Plans a batch. Requests are taken in order; a refused one leaves no trace and does not affect
/// the others (except that a later request sees the versions an earlier one produced).
pub(crate) fn plan_batch(
    mut state: BatchState,
    requests: &[Prepared],
    recorded_at: DateTime<Utc>,
) -> Plan {
    let recorded_at = to_micros(recorded_at);
    let mut plan = Plan {
        rows: Vec::with_capacity(requests.iter().map(|r| r.request.events.len()).sum()),
        idempotency: Vec::new(),
        outcomes: Vec::with_capacity(requests.len()),
        head_position: state.head_position,
        head_hash: state.head_hash,
    };
    let mut seen_event_ids = HashSet::new();
    for unit in units(requests) {
        if let [one] = unit {
            let outcome = plan_one(&mut state, &mut plan, &mut seen_event_ids, one, recorded_at);
            plan.outcomes.push(outcome);
        } else {
            plan_together(
                &mut state,
                &mut plan,
                &mut seen_event_ids,
                unit,
                recorded_at,
            );
        }
    }
    plan
}

/// Plans requests that are recorded all or none: if one is refused, the plan is put back as it
/// was before the first, and every request of the unit is answered with that refusal.
fn plan_together(
    state: &mut BatchState,
    plan: &mut Plan,
    seen_event_ids: &mut HashSet<Uuid>,
    unit: &[Prepared],
    recorded_at: DateTime<Utc>,
) {
    let before = (
        state.versions.clone(),
        state.taken_keys.clone(),
        seen_event_ids.clone(),
        plan.rows.len(),
        plan.idempotency.len(),
        plan.head_position,
        plan.head_hash,
    );
    let mut outcomes = Vec::with_capacity(unit.len());
    for req in unit {
        let outcome = plan_one(state, plan, seen_event_ids, req, recorded_at);
        let refused = outcome.is_err();
        outcomes.push(outcome);
        if refused {
            break;
        }
    }
    match outcomes.iter().find_map(|o| o.as_ref().err()).cloned() {
        None => plan.outcomes.extend(outcomes),
        Some(refusal) => {
            let (versions, keys, ids, rows, idempotency, position, hash) = before;
            state.versions = versions;
            state.taken_keys = keys;
            *seen_event_ids = ids;
            plan.rows.truncate(rows);
            plan.idempotency.truncate(idempotency);
            plan.head_position = position;
            plan.head_hash = hash;
            plan.outcomes
                .extend(unit.iter().map(|_| Err(refusal.clone())));
        }
    }
}

fn plan_one(
    state: &mut BatchState,
    plan: &mut Plan,
    seen_event_ids: &mut HashSet<Uuid>,
    prepared: &Prepared,
    recorded_at: DateTime<Utc>,
) -> Result<Committed, AppendError> {
    let req = &prepared.request;
    if req
        .events
        .iter()
        .any(|e| seen_event_ids.contains(&e.event_id))
    {
        return Err(AppendError::Invalid("duplicate event id".to_string()));
    }
    let stream = req.stream_id.as_str();
    let actual = state.versions.get(stream).copied();
    let version_ok = match req.expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => actual.is_none(),
        ExpectedVersion::Exact(n) => actual == Some(n),
    };
    if !version_ok {
        return Err(AppendError::WrongExpectedVersion {
            stream_id: req.stream_id.clone(),
            expected: req.expected,
            actual,
        });
    }
    if let Some(record) = &req.idempotency {
        let k = (record.api_key_id.clone(), record.key.clone());
        if state.taken_keys.contains(&k) {
            return Err(AppendError::IdempotencyKeyExists {
                api_key_id: k.0,
                key: k.1,
            });
        }
        state.taken_keys.insert(k);
    }

    let first_position = plan.head_position.next();
    let mut version = actual.unwrap_or(0);
    for (event, (payload, metadata)) in req.events.iter().zip(&prepared.encoded) {
        seen_event_ids.insert(event.event_id);
        version += 1;
        let position = plan.head_position.next();
        let occurred_at = to_micros(event.occurred_at);
        let hash = event_hash(
            &plan.head_hash,
            &EventFields {
                position,
                event_id: event.event_id,
                stream_id: stream,
                stream_version: version,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                payload,
                metadata,
                occurred_at,
                recorded_at,
            },
        );
        plan.rows.push(Row {
            position: position.0,
            event_id: event.event_id,
            stream_id: stream.to_string(),
            stream_version: version,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            payload: payload.clone(),
            metadata: metadata.clone(),
            occurred_at,
            recorded_at,
            prev_hash: plan.head_hash,
            hash,
        });
        plan.head_position = position;
        plan.head_hash = hash;
    }
    state.versions.insert(stream.to_string(), version);
    if let Some(record) = &req.idempotency {
        plan.idempotency.push(IdempotencyRecord {
            position: plan.head_position,
            ..record.clone()
        });
    }
    Ok(Committed {
        first_position,
        last_position: plan.head_position,
        stream_version: version,
    })
}

/// Checks a request on its own and encodes its JSON once.
fn validate(req: &AppendRequest) -> Result<Vec<(String, String)>, AppendError> {
    let invalid = |m: &str| Err(AppendError::Invalid(m.to_string()));
    if req.events.is_empty() {
        return invalid("an append needs at least one event");
    }
    if req.events.len() > REQUEST_MAX_EVENTS {
        return invalid("too many events in one append");
    }
    let mut encoded = Vec::with_capacity(req.events.len());
    let mut ids = HashSet::new();
    for e in &req.events {
        if e.event_type.is_empty() || e.event_type.len() > EVENT_TYPE_MAX_BYTES {
            return invalid("event type must be 1 to 200 bytes");
        }
        if e.schema_version < 1 {
            return invalid("schema_version starts at 1");
        }
        if !ids.insert(e.event_id) {
            return invalid("duplicate event id");
        }
        if has_nul(&e.payload) {
            return invalid("payload strings may not contain NUL");
        }
        let metadata = serde_json::to_value(&e.metadata)
            .map_err(|err| AppendError::Invalid(err.to_string()))?;
        if has_nul(&metadata) {
            return invalid("metadata strings may not contain NUL");
        }
        let payload = canonical_json(&e.payload);
        if payload.len() > EVENT_MAX_PAYLOAD_BYTES {
            return invalid("payload larger than 1 MiB");
        }
        encoded.push((payload, canonical_json(&metadata)));
    }
    Ok(encoded)
}

/// Whether a floating-point number is anywhere in `v`.
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}

/// PostgreSQL's `jsonb` cannot hold U+0000; both stores refuse it so they stay alike.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{NewEvent, StreamId};
    use serde_json::json;

    fn empty_state() -> BatchState {
        BatchState {
            head_position: Position(0),
            head_hash: Hash::GENESIS,
            versions: HashMap::new(),
            taken_keys: HashSet::new(),
        }
    }

    fn prep(requests: Vec<AppendRequest>) -> Vec<Prepared> {
        requests.into_iter().map(|r| prepare(r).unwrap()).collect()
    }

    fn req(stream: &str, expected: ExpectedVersion, n: usize) -> AppendRequest {
        let events = (0..n)
            .map(|i| NewEvent::new("Tested", json!({"i": i}), Utc::now()))
            .collect();
        AppendRequest::new(StreamId::new(stream).unwrap(), expected, events)
    }

    #[test]
    fn positions_are_contiguous_and_chained() {
        let plan = plan_batch(
            empty_state(),
            &prep(vec![
                req("a", ExpectedVersion::NoStream, 2),
                req("b", ExpectedVersion::Any, 3),
            ]),
            Utc::now(),
        );
        assert_eq!(
            plan.rows.iter().map(|r| r.position).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(plan.rows[0].prev_hash, Hash::GENESIS);
        for w in plan.rows.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
        assert_eq!(plan.head_position, Position(5));
        assert_eq!(plan.head_hash, plan.rows[4].hash);
    }

    #[test]
    fn each_request_is_answered_on_its_own() {
        let mut state = empty_state();
        state.versions.insert("a".into(), 3);
        let plan = plan_batch(
            state,
            &prep(vec![
                req("a", ExpectedVersion::Exact(2), 1), // stale: refused
                req("a", ExpectedVersion::Exact(3), 1), // recorded, a -> 4
                req("a", ExpectedVersion::Exact(3), 1), // stale after the previous one
                req("b", ExpectedVersion::NoStream, 1),
                req("b", ExpectedVersion::NoStream, 1), // b exists now
            ]),
            Utc::now(),
        );
        let ok: Vec<bool> = plan.outcomes.iter().map(|o| o.is_ok()).collect();
        assert_eq!(ok, vec![false, true, false, true, false]);
        assert_eq!(plan.rows.len(), 2);
        assert_eq!(plan.rows[0].stream_version, 4);
        assert!(matches!(
            plan.outcomes[0],
            Err(AppendError::WrongExpectedVersion {
                actual: Some(3),
                ..
            })
        ));
    }

    #[test]
    fn a_unit_is_recorded_whole_or_not_at_all() {
        let mut state = empty_state();
        state.versions.insert("a".into(), 1);
        let mut requests = prep(vec![
            req("x", ExpectedVersion::NoStream, 1),
            req("b", ExpectedVersion::NoStream, 2), // with the next: refused together
            req("a", ExpectedVersion::Exact(0), 1), // stale
            req("c", ExpectedVersion::NoStream, 1), // with the next: recorded together
            req("a", ExpectedVersion::Exact(1), 1),
            req("b", ExpectedVersion::NoStream, 1), // b was not created by the refused unit
        ]);
        requests[1].with_next = true;
        requests[3].with_next = true;
        let plan = plan_batch(state, &requests, Utc::now());
        let ok: Vec<bool> = plan.outcomes.iter().map(|o| o.is_ok()).collect();
        assert_eq!(ok, vec![true, false, false, true, true, true]);
        assert!(matches!(
            plan.outcomes[1],
            Err(AppendError::WrongExpectedVersion {
                actual: Some(1),
                ..
            })
        ));
        let streams: Vec<&str> = plan.rows.iter().map(|r| r.stream_id.as_str()).collect();
        assert_eq!(streams, vec!["x", "c", "a", "b"]);
        assert_eq!(
            plan.rows.iter().map(|r| r.position).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(plan.rows[2].stream_version, 2);
        for w in plan.rows.windows(2) {
            assert_eq!(w[1].prev_hash, w[0].hash);
        }
        assert_eq!(plan.head_hash, plan.rows[3].hash);
    }

    #[test]
    fn idempotency_keys_are_taken_once() {
        let record = IdempotencyRecord {
            api_key_id: "key_1".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            status: 200,
            body: "{}".into(),
            position: Position(0),
        };
        let plan = plan_batch(
            empty_state(),
            &prep(vec![
                req("a", ExpectedVersion::Any, 2).with_idempotency(record.clone()),
                req("b", ExpectedVersion::Any, 1).with_idempotency(record),
            ]),
            Utc::now(),
        );
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(
            plan.outcomes[1],
            Err(AppendError::IdempotencyKeyExists { .. })
        ));
        assert_eq!(plan.idempotency.len(), 1);
        assert_eq!(plan.idempotency[0].position, Position(2));
    }

    #[test]
    fn empty_nul_and_duplicate_ids_are_refused() {
        assert!(matches!(
            prepare(req("c", ExpectedVersion::NoStream, 0)),
            Err(AppendError::Invalid(_))
        ));
        let mut bad = req("a", ExpectedVersion::Any, 1);
        bad.events[0].payload = json!({"name": "a\u{0}b"});
        assert!(matches!(prepare(bad), Err(AppendError::Invalid(_))));
        let mut dup = req("b", ExpectedVersion::Any, 2);
        dup.events[1].event_id = dup.events[0].event_id;
        assert!(matches!(prepare(dup), Err(AppendError::Invalid(_))));

        // The same event id in two requests of one batch: the second is refused.
        let first = req("d", ExpectedVersion::Any, 1);
        let mut second = req("e", ExpectedVersion::Any, 1);
        second.events[0].event_id = first.events[0].event_id;
        let plan = plan_batch(empty_state(), &prep(vec![first, second]), Utc::now());
        assert!(plan.outcomes[0].is_ok());
        assert!(matches!(plan.outcomes[1], Err(AppendError::Invalid(_))));
        assert_eq!(plan.rows.len(), 1);
    }
}
