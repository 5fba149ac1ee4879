//! Personal data, encrypted per subject, erasable without touching the log (crypto-shredding).
//!
//! Each subject (a customer) has its own data key. Personal data (name, email, street address)
//! is sealed with it (AES-256-GCM, the subject as associated data) before it goes into an event;
//! the key itself is stored only wrapped by the master key from the environment. Erasing the
//! subject destroys its wrapped key: the immutable log keeps the ciphertext and every money fact,
//! and nobody can read the person again. The hash chain is untouched, because no event changes.

pub mod cipher;
mod master;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

pub use self::cipher::{CipherError, Key};
pub use self::master::{MasterKeyError, master_key};
use crate::store::StoreError;

/// Where wrapped data keys live (a mutable table beside the log).
#[async_trait]
pub trait DataKeyStore: Send + Sync + 'static {
    /// Stores `wrapped` for `subject` unless it has a key (or had one) already; answers the
    /// subject's key as stored: `Some(wrapped)`, or `None` once shredded.
    async fn insert_data_key(
        &self,
        subject: &str,
        wrapped: &[u8],
        at: DateTime<Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// The subject's wrapped key: `None` if it never had one, `Some(None)` once shredded.
    async fn data_key(&self, subject: &str) -> Result<Option<Option<Vec<u8>>>, StoreError>;

    /// Destroys the subject's key for good; `false` if it had none or was shredded already.
    /// In the same transaction it deletes the stored idempotent responses that contain the
    /// subject's object (they may hold its personal data in clear): see [`subject_object_pattern`].
    async fn shred_data_key(&self, subject: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;
}

/// A SQL `LIKE` pattern (escape character `\`) matching JSON text that contains the object
/// whose `"id"` is `subject`.
pub fn subject_object_pattern(subject: &str) -> String {
    let mut escaped = String::with_capacity(subject.len() + 16);
    for c in subject.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("%\"id\":\"{escaped}\"%")
}

/// Why the vault could not seal or open.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The subject's data was erased: its key is gone.
    #[error("personal data of {0} was erased")]
    Shredded(String),
    /// A sealed value or wrapped key does not authenticate (wrong master key, changed bytes).
    #[error("{0}: sealed data does not authenticate (wrong master key?)")]
    Unauthentic(String),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Version tag of the sealed text format: `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`.
const SEALED_PREFIX: &str = "v1.";

/// Seals and opens personal data per subject.
#[derive(Clone)]
pub struct Vault {
    master: Arc<Key>,
    keys: Arc<dyn DataKeyStore>,
}

impl Vault {
    pub fn new(master: Key, keys: Arc<dyn DataKeyStore>) -> Vault {
        Vault {
            master: Arc::new(master),
            keys,
        }
    }

    /// `plaintext` sealed with `subject`'s data key (created on first use) as text for an event.
    ///
    /// # Errors
    /// [`VaultError::Shredded`] if the subject was erased; store or randomness failures.
    pub async fn seal(&self, subject: &str, plaintext: &[u8]) -> Result<String, VaultError> {
        let key = self.key_for_sealing(subject).await?;
        let sealed = cipher::seal(&key, plaintext, subject.as_bytes())?;
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The plaintext of `sealed`, or `None` when the subject was erased (or never had a key).
    ///
    /// # Errors
    /// [`VaultError::Unauthentic`] for a malformed or changed value or a wrong master key.
    pub async fn open(&self, subject: &str, sealed: &str) -> Result<Option<Vec<u8>>, VaultError> {
        let Some(Some(wrapped)) = self.keys.data_key(subject).await? else {
            return Ok(None);
        };
        let key = cipher::unwrap(&self.master, &wrapped, subject)
            .map_err(|_| VaultError::Unauthentic(subject.to_string()))?;
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .ok_or_else(|| VaultError::Unauthentic(subject.to_string()))?;
        cipher::open(&key, &bytes, subject.as_bytes())
            .map(Some)
            .map_err(|_| VaultError::Unauthentic(subject.to_string()))
    }

    /// Destroys `subject`'s data key; `false` if there was none left to destroy.
    ///
    /// # Errors
    /// Store failures.
    pub async fn shred(&self, subject: &str, at: DateTime<Utc>) -> Result<bool, VaultError> {
        Ok(self.keys.shred_data_key(subject, at).await?)
    }

    async fn key_for_sealing(&self, subject: &str) -> Result<Key, VaultError> {
        let wrapped = match self.keys.data_key(subject).await? {
            Some(Some(wrapped)) => wrapped,
            Some(None) => return Err(VaultError::Shredded(subject.to_string())),
            None => {
                let fresh = cipher::wrap(&self.master, &Key::generate()?, subject)?;
                // Two first uses may race: the one stored first wins, both use it.
                self.keys
                    .insert_data_key(subject, &fresh, Utc::now())
                    .await?
                    .ok_or_else(|| VaultError::Shredded(subject.to_string()))?
            }
        };
        cipher::unwrap(&self.master, &wrapped, subject)
            .map_err(|_| VaultError::Unauthentic(subject.to_string()))
    }
}
