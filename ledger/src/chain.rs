//! The hash chain: `hash = SHA-256(prev_hash ‖ canonical bytes of the event)`.
//!
//! The canonical bytes cover every field of the envelope (position, ids, stream, version, type,
//! schema version, payload, metadata, both timestamps), each length-prefixed so no two events
//! share an encoding. JSON is written in one canonical form (object keys sorted by their UTF-8
//! bytes, no whitespace, numbers as `jsonb` writes them) so the hash survives PostgreSQL's
//! `jsonb`, which reorders keys and rewrites some numbers.
//! Timestamps count in whole microseconds, the precision both stores keep.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::{Position, RecordedEvent};

/// A SHA-256 digest. `Hash::GENESIS` (all zeros) is the `prev_hash` of position 1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const GENESIS: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        use fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    pub fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Hash(out))
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        Some(Hash(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// Truncates a timestamp to whole microseconds (what PostgreSQL and our SQLite encoding keep).
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// JSON in canonical form: keys sorted by bytes, no insignificant whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        Value::Number(n) => write_number(n, out),
        Value::String(s) => push_json_string(s, out),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Null => out.push_str("null"),
    }
}

/// A JSON string literal exactly as `serde_json` writes it (`"` and `\\` escaped, control
/// characters as `\b \t \n \f \r` or `\u00xx`, everything else as is), without building a
/// `Value` and going through `Display` for it.
fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// A number in the form PostgreSQL's `jsonb` gives back, so the hash survives the round trip:
/// `jsonb` drops the sign of zero and writes exponents out, so a whole float such as `1e+16`
/// comes back as the integer `10000000000000000`.
fn write_number(n: &serde_json::Number, out: &mut String) {
    let text = n.to_string();
    match n.as_f64() {
        Some(f) if n.is_f64() && f == 0.0 => out.push_str("0.0"),
        // `u64::MAX as f64` is 2^64, just past the largest u64.
        Some(f)
            if n.is_f64()
                && text.contains('e')
                && f.fract() == 0.0
                && (i64::MIN as f64..u64::MAX as f64).contains(&f) =>
        {
            let whole = if f < 0.0 {
                (f as i64).to_string()
            } else {
                (f as u64).to_string()
            };
            out.push_str(&whole);
        }
        _ => out.push_str(&text),
    }
}

/// The fields the hash covers, borrowed from wherever they live.
pub struct EventFields<'a> {
    pub position: Position,
    pub event_id: uuid::Uuid,
    pub stream_id: &'a str,
    pub stream_version: i64,
    pub event_type: &'a str,
    pub schema_version: i32,
    /// Canonical JSON of the payload.
    pub payload: &'a str,
    /// Canonical JSON of the metadata.
    pub metadata: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// `SHA-256(prev ‖ canonical bytes)`.
pub fn event_hash(prev: &Hash, e: &EventFields<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update(b"kanizsa-billing/event/v1");
    h.update(prev.0);
    h.update(e.position.0.to_be_bytes());
    h.update(e.event_id.as_bytes());
    for text in [e.stream_id, e.event_type] {
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    }
    h.update(e.stream_version.to_be_bytes());
    h.update(e.schema_version.to_be_bytes());
    for text in [e.payload, e.metadata] {
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    }
    h.update(e.occurred_at.timestamp_micros().to_be_bytes());
    h.update(e.recorded_at.timestamp_micros().to_be_bytes());
    Hash(h.finalize().into())
}

/// Recomputes the hash of an event as stored (before any upcasting).
pub fn recompute(prev: &Hash, e: &RecordedEvent) -> Hash {
    let payload = canonical_json(&e.payload);
    let metadata = canonical_json(&serde_json::to_value(&e.metadata).unwrap_or(Value::Null));
    event_hash(
        prev,
        &EventFields {
            position: e.position,
            event_id: e.event_id,
            stream_id: e.stream_id.as_str(),
            stream_version: e.stream_version,
            event_type: &e.event_type,
            schema_version: e.schema_version,
            payload: &payload,
            metadata: &metadata,
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
        },
    )
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub position: Position,
    pub reason: String,
}

/// Outcome of a verification run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub from: Position,
    pub checked: u64,
    pub last_position: Position,
    pub last_hash: Hash,
    pub first_break: Option<ChainBreak>,
}

/// Checks events one by one, in order; fed by whoever reads the raw log.
pub struct ChainVerifier {
    expected_position: Position,
    prev: Hash,
    checked: u64,
    from: Position,
    first_break: Option<ChainBreak>,
}

impl ChainVerifier {
    /// Starts at `from` (≥ 1), trusting `prev` as the hash of the event before it.
    pub fn new(from: Position, prev: Hash) -> Self {
        Self {
            expected_position: from,
            prev,
            checked: 0,
            from,
            first_break: None,
        }
    }

    /// Feeds the next event; returns false once the chain is broken (stop reading).
    pub fn feed(&mut self, e: &RecordedEvent) -> bool {
        if self.first_break.is_some() {
            return false;
        }
        let reason = if e.position != self.expected_position {
            Some(format!(
                "expected position {}, found {}",
                self.expected_position, e.position
            ))
        } else if e.prev_hash != self.prev {
            Some("prev_hash does not match the hash of the previous event".to_string())
        } else if recompute(&self.prev, e) != e.hash {
            Some("stored hash does not match the event's contents".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            self.first_break = Some(ChainBreak {
                position: self.expected_position,
                reason,
            });
            return false;
        }
        self.prev = e.hash;
        self.expected_position = e.position.next();
        self.checked += 1;
        true
    }

    pub fn finish(self) -> VerifyReport {
        VerifyReport {
            from: self.from,
            checked: self.checked,
            last_position: Position(self.expected_position.0 - 1),
            last_hash: self.prev,
            first_break: self.first_break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        // Every byte below 0x80 alone and between others, and characters beyond ASCII: the
        // hash of every stored event depends on these bytes staying the same.
        let mut samples: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        samples.extend((0u8..0x80).map(|b| format!("a{}z\u{2028}é", char::from(b))));
        samples.extend(
            [
                "",
                "plain",
                "\"quoted\" and \\ back",
                "Zoë — 東京 🚀 \u{7f}\u{1f}\u{0}",
            ]
            .map(String::from),
        );
        for s in samples {
            let mut ours = String::new();
            push_json_string(&s, &mut ours);
            assert_eq!(ours, serde_json::to_string(&s).unwrap(), "{s:?}");
        }
        assert_eq!(
            canonical_json(&json!({"k\n\u{1}": [true, false, null, "\t"]})),
            r#"{"k\n\u0001":[true,false,null,"\t"]}"#
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"z": [3, {"y": null, "x": "s\"q"}], "aa": true}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"aa":true,"z":[3,{"x":"s\"q","y":null}]},"b":1}"#
        );
    }

    #[test]
    fn hex_round_trips() {
        let h = Hash([0xab; 32]);
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(Hash::from_hex("zz"), None);
        assert_eq!(Hash::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let t = to_micros(Utc::now());
        let base = EventFields {
            position: Position(1),
            event_id: uuid::Uuid::nil(),
            stream_id: "s-1",
            stream_version: 1,
            event_type: "T",
            schema_version: 1,
            payload: "{}",
            metadata: "{}",
            occurred_at: t,
            recorded_at: t,
        };
        let h0 = event_hash(&Hash::GENESIS, &base);
        let later = t + chrono::Duration::microseconds(1);
        let variants = [
            EventFields {
                position: Position(2),
                ..base
            },
            EventFields {
                stream_id: "s-2",
                ..base
            },
            EventFields {
                stream_version: 2,
                ..base
            },
            EventFields {
                event_type: "U",
                ..base
            },
            EventFields {
                schema_version: 2,
                ..base
            },
            EventFields {
                payload: "{\"a\":1}",
                ..base
            },
            EventFields {
                metadata: "{\"a\":1}",
                ..base
            },
            EventFields {
                occurred_at: later,
                ..base
            },
            EventFields {
                recorded_at: later,
                ..base
            },
            // Moving bytes between adjacent fields must not collide.
            EventFields {
                stream_id: "s-1T",
                event_type: "",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(event_hash(&Hash::GENESIS, &v), h0);
        }
        assert_ne!(event_hash(&Hash([1; 32]), &base), h0);
    }
}
