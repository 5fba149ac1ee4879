//! AES-256-GCM, the two ways the vault uses it: wrapping a data key with the master key, and
//! sealing a subject's personal data with its data key. Pure functions over bytes; randomness
//! (keys, nonces) comes from the operating system.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Bytes of a GCM nonce (96 bits, the recommended size).
pub const NONCE_LEN: usize = 12;
/// Bytes of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Bytes of a wrapped data key: nonce ‖ encrypted key ‖ tag.
pub const WRAPPED_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

/// A 256-bit key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Encryption or decryption failed: a wrong key, a changed byte, or no randomness.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("ciphertext does not authenticate under this key")]
    Unauthentic,
    #[error("the operating system gave no randomness")]
    NoRandomness,
}

impl Key {
    /// A fresh random key.
    ///
    /// # Errors
    /// [`CipherError::NoRandomness`] if the operating system cannot provide it.
    pub fn generate() -> Result<Key, CipherError> {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|_| CipherError::NoRandomness)?;
        Ok(Key(bytes))
    }

    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Key {
        Key(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

/// `nonce ‖ AES-256-GCM(key, nonce, plaintext, aad)` with a fresh random nonce. `aad` binds the
/// ciphertext to its context (the subject), so it cannot be moved to another one.
///
/// # Errors
/// [`CipherError::NoRandomness`].
pub fn seal(key: &Key, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CipherError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| CipherError::NoRandomness)?;
    let cipher = Aes256Gcm::new(&key.0.into());
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CipherError::Unauthentic)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of [`seal`]'s output.
///
/// # Errors
/// [`CipherError::Unauthentic`] for a wrong key or aad, or any changed byte.
pub fn open(key: &Key, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CipherError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CipherError::Unauthentic);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CipherError::Unauthentic)?;
    let cipher = Aes256Gcm::new(&key.0.into());
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
        .map_err(|_| CipherError::Unauthentic)
}

/// `key` wrapped by `master` ([`WRAPPED_LEN`] bytes).
///
/// # Errors
/// [`CipherError::NoRandomness`].
pub fn wrap(master: &Key, key: &Key, subject: &str) -> Result<Vec<u8>, CipherError> {
    seal(master, &key.0, subject.as_bytes())
}

/// The data key inside `wrapped`.
///
/// # Errors
/// [`CipherError::Unauthentic`] under another master key or subject.
pub fn unwrap(master: &Key, wrapped: &[u8], subject: &str) -> Result<Key, CipherError> {
    let bytes = open(master, wrapped, subject.as_bytes())?;
    let bytes: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| CipherError::Unauthentic)?;
    Ok(Key(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_its_key_and_subject() {
        let key = Key::generate().unwrap();
        let sealed = seal(&key, b"Ada Lovelace", b"cus_1").unwrap();
        assert_eq!(open(&key, &sealed, b"cus_1").unwrap(), b"Ada Lovelace");
        assert_eq!(open(&key, &sealed, b"cus_2"), Err(CipherError::Unauthentic));
        let other = Key::generate().unwrap();
        assert_eq!(
            open(&other, &sealed, b"cus_1"),
            Err(CipherError::Unauthentic)
        );
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(
            open(&key, &changed, b"cus_1"),
            Err(CipherError::Unauthentic)
        );
        assert_eq!(
            open(&key, &sealed[..10], b"cus_1"),
            Err(CipherError::Unauthentic)
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = Key::generate().unwrap();
        assert_ne!(
            seal(&key, b"x", b"").unwrap(),
            seal(&key, b"x", b"").unwrap()
        );
    }

    #[test]
    fn a_wrapped_key_has_a_fixed_length_and_unwraps_only_with_the_master_key() {
        let master = Key::generate().unwrap();
        let key = Key::generate().unwrap();
        let wrapped = wrap(&master, &key, "cus_1").unwrap();
        assert_eq!(wrapped.len(), WRAPPED_LEN);
        assert_eq!(unwrap(&master, &wrapped, "cus_1").unwrap(), key);
        assert!(unwrap(&Key::generate().unwrap(), &wrapped, "cus_1").is_err());
        assert!(unwrap(&master, &wrapped, "cus_2").is_err());
    }
}
