//! API keys: bearer secrets with a scope, stored only as SHA-256 digests.
//!
//! A key is 256 bits of randomness, so a fast digest is enough (no password-style stretching):
//! nobody can guess a preimage, and a stolen table gives no usable key. The secret is shown once,
//! when created; afterwards only its id and a short prefix identify it.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::ApiKeyId;
use crate::store::StoreError;

/// What a key may do. `Admin` ⊇ `Write` ⊇ `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Whether a key with this scope may do what `needed` requires.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope `{other}` (read, write or admin)")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's secret. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Prefix of every secret, so leaked keys are easy to find with a scanner.
    pub const PREFIX: &'static str = "kb_";

    /// 256 random bits from the operating system.
    pub fn generate() -> Secret {
        let a = uuid::Uuid::new_v4().simple().to_string();
        let b = uuid::Uuid::new_v4().simple().to_string();
        let c = uuid::Uuid::new_v4().simple().to_string();
        // Three v4 UUIDs carry 3 × 122 random bits; keep 64 hex digits (≥ 244 random bits).
        Secret(format!("{}{}", Self::PREFIX, &(a + &b + &c)[..64]))
    }

    pub fn from_presented(s: &str) -> Secret {
        Secret(s.to_string())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"kanizsa-billing/api-key/v1:");
        h.update(self.0.as_bytes());
        h.finalize().into()
    }

    /// The first characters, safe to show in listings.
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(Self::PREFIX.len() + 6).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}…)", self.display_prefix())
    }
}

/// A stored key (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub prefix: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where keys are kept. Implemented by both stores.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    async fn insert_key(&self, key: &ApiKey, digest: [u8; 32]) -> Result<(), StoreError>;
    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Marks a key revoked; false when there is no such active key.
    async fn revoke_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// The active key with this digest.
    async fn find_active_key(&self, digest: [u8; 32]) -> Result<Option<ApiKey>, StoreError>;
}

/// Creates and stores a new key; returns it with its secret (to show once).
pub async fn create_key(
    store: &dyn KeyStore,
    scope: Scope,
    now: DateTime<Utc>,
) -> Result<(ApiKey, Secret), StoreError> {
    let secret = Secret::generate();
    let key = ApiKey {
        id: ApiKeyId::new(),
        prefix: secret.display_prefix(),
        scope,
        created_at: crate::chain::to_micros(now),
        revoked_at: None,
    };
    store.insert_key(&key, secret.digest()).await?;
    Ok((key, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest() {
        assert!(Scope::Admin.allows(Scope::Write) && Scope::Write.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write) && !Scope::Write.allows(Scope::Admin));
        assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn secrets_are_random_and_hidden_from_debug() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 3 + 64);
        assert!(!format!("{a:?}").contains(&a.expose()[10..]));
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), Secret::from_presented(a.expose()).digest());
    }
}
