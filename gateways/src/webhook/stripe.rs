//! Stripe's `Stripe-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>[,v1=…][,v0=…]`.
//!
//! The signed payload is `"<t>.<raw body>"`, keyed by the endpoint's secret (`whsec_…`). A
//! delivery is accepted when one `v1` signature matches one of the configured secrets (several
//! during a rotation) — compared in constant time — and `t` is within the tolerance of now
//! (300 s, Stripe's default), which bounds the replay of a captured delivery.

use hmac::{KeyInit, Mac};
use serde::Deserialize;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Stripe's default tolerance between the signature's time and ours.
pub const TOLERANCE_S: i64 = 300;
/// Longest header considered (Stripe sends one `v1`, two during a secret's rotation).
pub const HEADER_MAX_BYTES: usize = 1_024;
/// Most `v1` signatures considered in one header.
pub const SIGNATURES_MAX: usize = 8;

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header does not have a `t=` and at least one `v1=`.
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    /// No `v1` signature matches any configured secret.
    #[error("no signature matches")]
    NoMatch,
    /// The signature's time is too far from now.
    #[error("the signature's timestamp is outside the tolerance")]
    Expired,
}

/// Checks `header` over `body` against `secrets` at unix time `now`.
///
/// # Errors
/// [`SignatureError`]: the delivery must be refused and nothing recorded.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > HEADER_MAX_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                timestamp = t.parse::<i64>().ok();
            }
            Some(("t", _)) => return Err(SignatureError::Malformed),
            // Only what HMAC-SHA256 gives: 64 lower-case hex digits; anything else cannot match.
            Some(("v1", s)) => signatures.extend(from_hex(s)),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() || signatures.len() > SIGNATURES_MAX {
        return Err(SignatureError::Malformed);
    }
    // The time first: a stale or far-future delivery costs no MAC.
    if now.abs_diff(t) > tolerance_s.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    // One MAC per secret; each compared with every signature in constant time (`subtle`).
    let matched = secrets.iter().any(|secret| {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        signatures
            .iter()
            .any(|expected| mac.clone().verify_slice(expected).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// A `Stripe-Signature` header for `body` at time `t` (stand-ins and tests sign as Stripe does).
#[must_use]
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => return format!("t={t}"),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// The 32 bytes of a 64-digit lower-case hex signature.
fn from_hex(s: &str) -> Option<[u8; 32]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The envelope fields of a Stripe event that the inbox records.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Envelope {
    /// `evt_…`: deliveries of one event share it.
    pub id: String,
    /// `payment_intent.succeeded`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds.
    pub created: i64,
    /// Whether the event comes from live mode.
    #[serde(default)]
    pub livemode: bool,
}

/// The envelope of `body`, if it is a Stripe event.
#[must_use]
pub fn envelope(body: &[u8]) -> Option<Envelope> {
    let e: Envelope = serde_json::from_slice(body).ok()?;
    let id_ok = e.id.starts_with("evt_")
        && e.id.len() <= 150
        && e.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let type_ok = !e.event_type.is_empty()
        && e.event_type.len() <= 100
        && !e.event_type.chars().any(char::is_control);
    (id_ok && type_ok).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"charge.refunded","created":1,"livemode":false}"#;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn a_signature_made_with_a_configured_secret_within_the_tolerance_passes() {
        let h = sign("whsec_a", 1_000, BODY);
        assert_eq!(
            verify(Some(&h), BODY, &secrets(&["whsec_a"]), 1_000, 300),
            Ok(())
        );
        assert_eq!(
            verify(Some(&h), BODY, &secrets(&["whsec_a"]), 1_300, 300),
            Ok(())
        );
        // Rotation: the old and the new secret are both accepted.
        let s = secrets(&["whsec_new", "whsec_a"]);
        assert_eq!(verify(Some(&h), BODY, &s, 1_000, 300), Ok(()));
        // Several v1 signatures: one matching is enough.
        let v1 = h.split_once(",v1=").unwrap().1;
        let two = format!("t=1000,v1={},v1={v1},v0=abc", "0".repeat(64));
        assert_eq!(
            verify(Some(&two), BODY, &secrets(&["whsec_a"]), 1_000, 300),
            Ok(())
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let h = sign("whsec_a", 1_000, BODY);
        let s = secrets(&["whsec_a"]);
        assert_eq!(
            verify(None, BODY, &s, 1_000, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(Some(&h), BODY, &secrets(&["whsec_b"]), 1_000, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&h), b"{}", &s, 1_000, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(Some(&h), BODY, &s, 1_301, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(Some(&h), BODY, &s, 699, 300),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            verify(Some(&h), BODY, &[], 1_000, 300),
            Err(SignatureError::NoMatch)
        );
        for bad in ["", "t=1000", "v1=00", "t=x,v1=00", "garbage"] {
            assert_eq!(
                verify(Some(bad), BODY, &s, 1_000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // The time is part of what is signed: another t with the same v1 does not match.
        let moved = h.replacen("t=1000", "t=1001", 1);
        assert_eq!(
            verify(Some(&moved), BODY, &s, 1_000, 300),
            Err(SignatureError::NoMatch)
        );
        // Only 64 lower-case hex digits count as a signature; a plain decimal time only.
        let v1 = h.split_once(",v1=").unwrap().1;
        for bad in [
            "t=1000,v1=zz".to_string(),
            format!("t=1000,v1={}", v1.to_uppercase()),
            format!("t=+1000,v1={v1}"),
            format!("t=1000,v1={}", &v1[..62]),
        ] {
            assert_eq!(
                verify(Some(&bad), BODY, &s, 1_000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // Bounded work: many signatures or a long header are refused before any MAC.
        let many = format!("t=1000{}", format!(",v1={v1}").repeat(9));
        assert_eq!(
            verify(Some(&many), BODY, &s, 1_000, 300),
            Err(SignatureError::Malformed)
        );
        let long = format!("{h},{}", "x".repeat(1_100));
        assert_eq!(
            verify(Some(&long), BODY, &s, 1_000, 300),
            Err(SignatureError::Malformed)
        );
        // A NUL in the type is not an event type.
        assert!(envelope(b"{\"id\":\"evt_1\",\"type\":\"a\\u0000b\",\"created\":1}").is_none());
    }

    #[test]
    fn the_envelope_is_read_from_an_event_only() {
        let e = envelope(BODY).unwrap();
        assert_eq!(
            (e.id.as_str(), e.event_type.as_str(), e.created),
            ("evt_1", "charge.refunded", 1)
        );
        for bad in [
            &b"[]"[..],
            b"{}",
            b"not json",
            br#"{"id":"ch_1","type":"x","created":1}"#,
            br#"{"id":"evt_a b","type":"x","created":1}"#,
            br#"{"id":"evt_1","type":"","created":1}"#,
        ] {
            assert!(envelope(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
