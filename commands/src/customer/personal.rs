//! The personal part of a customer: what is sealed with its data key and erased with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest name, email, phone or address field, in characters.
pub const FIELD_MAX_CHARS: usize = 320;
/// Most metadata entries (Stripe's limit).
pub const METADATA_MAX_KEYS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PersonalData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Which personal field is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PersonalDataError {
    pub field: &'static str,
    pub reason: String,
}

impl PersonalData {
    /// Checks lengths and the email's shape.
    ///
    /// # Errors
    /// The first field that is wrong.
    pub fn check(&self) -> Result<(), PersonalDataError> {
        let text = |field: &'static str, v: &Option<String>| match v {
            Some(s) if s.chars().count() > FIELD_MAX_CHARS || s.contains('\0') => {
                Err(PersonalDataError {
                    field,
                    reason: format!("at most {FIELD_MAX_CHARS} characters, without NUL"),
                })
            }
            _ => Ok(()),
        };
        text("name", &self.name)?;
        text("email", &self.email)?;
        text("phone", &self.phone)?;
        if let Some(email) = &self.email
            && !plausible_email(email)
        {
            return Err(PersonalDataError {
                field: "email",
                reason: "not an email address".into(),
            });
        }
        if let Some(a) = &self.address {
            text("address[line1]", &a.line1)?;
            text("address[line2]", &a.line2)?;
            text("address[city]", &a.city)?;
            text("address[state]", &a.state)?;
            text("address[postal_code]", &a.postal_code)?;
            text("address[country]", &a.country)?;
        }
        let metadata_ok = self.metadata.len() <= METADATA_MAX_KEYS
            && self
                .metadata
                .iter()
                .all(|(k, v)| !k.is_empty() && k.chars().count() <= 40 && v.chars().count() <= 500);
        if !metadata_ok {
            return Err(PersonalDataError {
                field: "metadata",
                reason: format!(
                    "at most {METADATA_MAX_KEYS} keys of 1 to 40 characters, values up to 500"
                ),
            });
        }
        Ok(())
    }
}

fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_lengths_are_checked() {
        let ok = PersonalData {
            email: Some("ada@example.com".into()),
            ..PersonalData::default()
        };
        assert!(ok.check().is_ok());
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
        ] {
            let p = PersonalData {
                email: Some(bad.into()),
                ..PersonalData::default()
            };
            assert_eq!(p.check().unwrap_err().field, "email", "{bad}");
        }
        let long = PersonalData {
            name: Some("x".repeat(FIELD_MAX_CHARS + 1)),
            ..PersonalData::default()
        };
        assert_eq!(long.check().unwrap_err().field, "name");
    }
}
