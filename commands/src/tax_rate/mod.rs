//! A tax rate as a resource: a name, a percentage, inclusive or exclusive, and where it applies
//! (country, optionally state). The arithmetic lives in [`crate::pricing::tax`].

use chrono::{DateTime, Utc};
use ledger::ids::TaxRateId;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::pricing::TaxRate as Rate;
use crate::stored::{DomainEvent, from_json, to_json};

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRateCreated {
    pub tax_rate_id: TaxRateId,
    pub display_name: String,
    /// `{"percentage": "8.25", "inclusive": false}`.
    #[serde(flatten)]
    pub rate: Rate,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaxRateEvent {
    Created(TaxRateCreated),
}

impl DomainEvent for TaxRateEvent {
    fn event_type(&self) -> &'static str {
        "TaxRateCreated"
    }

    fn payload(&self) -> serde_json::Value {
        let TaxRateEvent::Created(e) = self;
        to_json(e)
    }

    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        (event_type == "TaxRateCreated").then(|| from_json(payload).map(TaxRateEvent::Created))?
    }
}

/// The folded state of a tax rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRate {
    pub id: TaxRateId,
    pub display_name: String,
    pub rate: Rate,
    pub country: String,
    pub state: Option<String>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaxRateCommand {
    Create(TaxRateCreated),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxRateError {
    #[error("display_name must be 1 to {DISPLAY_NAME_MAX_CHARS} characters, without NUL")]
    DisplayNameInvalid,
    #[error("country must be an ISO 3166-1 alpha-2 code, e.g. `US`")]
    CountryInvalid,
    #[error("state must be 1 to 10 letters, digits or `-`")]
    StateInvalid,
    #[error("tax rate {0} exists already")]
    AlreadyExists(TaxRateId),
}

impl Aggregate for TaxRate {
    type Event = TaxRateEvent;
    type Command = TaxRateCommand;
    type Error = TaxRateError;
    const CATEGORY: &'static str = "taxrate";

    fn decide(
        state: Option<&TaxRate>,
        command: TaxRateCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<TaxRateEvent>, TaxRateError> {
        let TaxRateCommand::Create(mut new) = command;
        if let Some(existing) = state {
            return Err(TaxRateError::AlreadyExists(existing.id));
        }
        let name_ok = !new.display_name.trim().is_empty()
            && new.display_name.chars().count() <= DISPLAY_NAME_MAX_CHARS
            && !new.display_name.contains('\0');
        if !name_ok {
            return Err(TaxRateError::DisplayNameInvalid);
        }
        if new.country.len() != 2 || !new.country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(TaxRateError::CountryInvalid);
        }
        new.country = new.country.to_ascii_uppercase();
        if let Some(state) = &new.state {
            let ok = (1..=10).contains(&state.len())
                && state
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(TaxRateError::StateInvalid);
            }
        }
        // Upper case, as customers' tax locations are, so `ca` matches a customer in `CA`.
        new.state = new.state.map(|s| s.to_ascii_uppercase());
        Ok(vec![TaxRateEvent::Created(new)])
    }

    fn evolve(state: Option<TaxRate>, event: &TaxRateEvent, at: DateTime<Utc>) -> Option<TaxRate> {
        match (state, event) {
            (None, TaxRateEvent::Created(e)) => Some(TaxRate {
                id: e.tax_rate_id,
                display_name: e.display_name.clone(),
                rate: e.rate,
                country: e.country.clone(),
                state: e.state.clone(),
                created: at,
            }),
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> TaxRateCreated {
        TaxRateCreated {
            tax_rate_id: TaxRateId::derived("t"),
            display_name: "Sales tax".into(),
            rate: Rate::new("8.25", false).unwrap(),
            country: "us".into(),
            state: Some("CA".into()),
        }
    }

    #[test]
    fn create_normalizes_the_country_and_round_trips() {
        let events = TaxRate::decide(None, TaxRateCommand::Create(created()), Utc::now()).unwrap();
        let TaxRateEvent::Created(e) = &events[0];
        assert_eq!(e.country, "US");
        let payload = events[0].payload();
        assert_eq!(payload["percentage"], "8.25");
        assert_eq!(payload["inclusive"], false);
        assert_eq!(
            TaxRateEvent::from_stored("TaxRateCreated", &payload).as_ref(),
            Some(&events[0])
        );
        let rate = TaxRate::evolve(None, &events[0], Utc::now()).unwrap();
        assert_eq!(
            TaxRate::decide(Some(&rate), TaxRateCommand::Create(created()), Utc::now()),
            Err(TaxRateError::AlreadyExists(rate.id))
        );
    }

    #[test]
    fn bad_rates_are_refused() {
        let cases: Vec<(TaxRateCreated, TaxRateError)> = vec![
            (
                TaxRateCreated {
                    display_name: "".into(),
                    ..created()
                },
                TaxRateError::DisplayNameInvalid,
            ),
            (
                TaxRateCreated {
                    country: "USA".into(),
                    ..created()
                },
                TaxRateError::CountryInvalid,
            ),
            (
                TaxRateCreated {
                    country: "1A".into(),
                    ..created()
                },
                TaxRateError::CountryInvalid,
            ),
            (
                TaxRateCreated {
                    state: Some("".into()),
                    ..created()
                },
                TaxRateError::StateInvalid,
            ),
            (
                TaxRateCreated {
                    state: Some("C A".into()),
                    ..created()
                },
                TaxRateError::StateInvalid,
            ),
        ];
        for (c, expected) in cases {
            assert_eq!(
                TaxRate::decide(None, TaxRateCommand::Create(c), Utc::now()),
                Err(expected)
            );
        }
    }
}
