//! Typed, prefixed identifiers.
//!
//! Every id that crosses an API boundary is its own type (`CustomerId`, `ChargeId`, …) so one can
//! never be passed where another is expected. The wire form is Stripe-like: a short prefix, an
//! underscore and the 32 lowercase hex digits of a UUID (`ch_0b6c…`). Parsing checks the prefix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: expected `{prefix}_` followed by 32 hex digits")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id, ordered by creation within the process (UUIDv7: milliseconds since
            /// the epoch, then random bits): the indexes keyed by it (the log's stream ids, the
            /// read models' ids) take new ids at their right end, as they do positions, instead
            /// of on a random page each (measured in docs/BENCHMARKS.md).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The same id every time for the same name: used where a retry must land on the
            /// same stream (an idempotency key, a scheduled job).
            pub fn derived(name: &str) -> Self {
                Self(Uuid::new_v5(&ID_NAMESPACE, format!("{}:{}", $prefix, name).as_bytes()))
            }

            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                parse_prefixed(s, $prefix).map(Self).ok_or(IdError {
                    kind: stringify!($name),
                    prefix: $prefix,
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Namespace of derived (v5) ids; fixed forever, or derived ids would change.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b61_6e69_7a73_6162_696c_6c69_6e67_0001);

fn parse_prefixed(s: &str, prefix: &str) -> Option<Uuid> {
    let hex = s.strip_prefix(prefix)?.strip_prefix('_')?;
    if hex.len() != 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    Uuid::try_parse(hex).ok()
}

typed_id!(/// A customer (`cus_…`).
    CustomerId, "cus");
typed_id!(/// A plan (`plan_…`).
    PlanId, "plan");
typed_id!(/// A charge (`ch_…`).
    ChargeId, "ch");
typed_id!(/// A refund (`re_…`).
    RefundId, "re");
typed_id!(/// A subscription (`sub_…`).
    SubscriptionId, "sub");
typed_id!(/// An invoice (`in_…`).
    InvoiceId, "in");
typed_id!(/// A credit note (`cn_…`).
    CreditNoteId, "cn");
typed_id!(/// A tax rate (`tr_…`).
    TaxRateId, "tr");
typed_id!(/// A customer's payment method (`pm_…`): a gateway token, never a card number.
    PaymentMethodId, "pm");
typed_id!(/// A test clock (`clock_…`).
    TestClockId, "clock");
typed_id!(/// An API key (`key_…`); the secret itself is never an id.
    ApiKeyId, "key");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1_000).map(|_| ChargeId::new().to_string()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let events: Vec<Uuid> = (0..1_000)
            .map(|_| {
                crate::event::NewEvent::new("T", serde_json::json!({}), chrono::Utc::now()).event_id
            })
            .collect();
        assert!(events.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn round_trips_through_its_wire_form() {
        let id = ChargeId::new();
        let text = id.to_string();
        assert!(text.starts_with("ch_") && text.len() == 35, "{text}");
        assert_eq!(text.parse::<ChargeId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ChargeId>(&json).unwrap(), id);
    }

    #[test]
    fn refuses_another_kind_and_malformed_text() {
        let cus = CustomerId::new().to_string();
        assert!(cus.parse::<ChargeId>().is_err());
        for bad in [
            "",
            "ch_",
            "ch_123",
            "ch-0123456789abcdef0123456789abcdef",
            "ch_0123456789ABCDEF0123456789ABCDEF",
            "ch_0123456789abcdef0123456789abcdeg",
        ] {
            assert!(bad.parse::<ChargeId>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<ChargeId>("\"cus_0123\"").is_err());
    }

    #[test]
    fn derived_ids_are_stable_and_distinct_per_kind() {
        assert_eq!(ChargeId::derived("k1"), ChargeId::derived("k1"));
        assert_ne!(ChargeId::derived("k1"), ChargeId::derived("k2"));
        assert_ne!(
            ChargeId::derived("k1").as_uuid(),
            RefundId::derived("k1").as_uuid()
        );
    }
}
