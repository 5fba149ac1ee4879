//! The master key: 32 bytes as 64 hex digits, from `BILLING_MASTER_KEY`, or from a key file that
//! the embedded default creates on first start (so `cargo run` needs no configuration).

use std::io::Write;
use std::path::Path;

use super::cipher::{KEY_LEN, Key};

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be {} hex digits", KEY_LEN * 2)]
    Malformed,
    #[error("master key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cipher(#[from] super::CipherError),
}

/// Parses 64 hex digits.
///
/// # Errors
/// [`MasterKeyError::Malformed`].
pub fn parse_hex(text: &str) -> Result<Key, MasterKeyError> {
    let text = text.trim();
    if text.len() != KEY_LEN * 2 || !text.is_ascii() {
        return Err(MasterKeyError::Malformed);
    }
    let mut bytes = [0u8; KEY_LEN];
    for (i, byte) in bytes.iter_mut().enumerate() {
        let pair = text
            .get(i * 2..i * 2 + 2)
            .ok_or(MasterKeyError::Malformed)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| MasterKeyError::Malformed)?;
    }
    Ok(Key::from_bytes(bytes))
}

fn to_hex(key: &Key) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The master key: `configured` (hex) when given; otherwise the one in `file`, created with a
/// fresh random key (mode 0600) when missing. Answers whether the file was created.
///
/// # Errors
/// A malformed key, or the file cannot be read or written.
pub fn master_key(configured: Option<&str>, file: &Path) -> Result<(Key, bool), MasterKeyError> {
    if let Some(hex) = configured {
        return Ok((parse_hex(hex)?, false));
    }
    let io = |source| MasterKeyError::File {
        path: file.display().to_string(),
        source,
    };
    match std::fs::read_to_string(file) {
        Ok(text) => return Ok((parse_hex(&text)?, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let key = Key::generate()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(file).map_err(io)?;
    f.write_all(format!("{}\n", to_hex(&key)).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    Ok((key, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_bad_text_is_refused() {
        let key = Key::generate().unwrap();
        assert_eq!(parse_hex(&to_hex(&key)).unwrap(), key);
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex(&"zz".repeat(32)).is_err());
        assert!(parse_hex(&"é".repeat(32)).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("kb-master-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("master.key");
        let (first, created) = master_key(None, &file).unwrap();
        assert!(created);
        let (again, created) = master_key(None, &file).unwrap();
        assert!(!created);
        assert_eq!(first, again);
        let configured = to_hex(&Key::generate().unwrap());
        assert_ne!(master_key(Some(&configured), &file).unwrap().0, first);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
