//! The identifiers we put in PayPal requests, checked before anything is sent: a request that
//! could never be right is refused here, not half-sent.

use crate::gateway::GatewayError;

/// PayPal's limit on `PayPal-Request-Id`.
pub const REQUEST_ID_MAX: usize = 108;
/// PayPal's limit on a vault id (`^[0-9a-zA-Z_-]+$`).
pub const VAULT_ID_MAX: usize = 255;
/// PayPal's limit on a purchase unit's `description`.
pub const DESCRIPTION_MAX_CHARS: usize = 127;

/// `PayPal-Request-Id` for one step of a call: our idempotency key and a suffix (`":order"`,
/// `":capture"`, `""`). PayPal stores it (6 hours by default) and answers a repeat with the
/// first request's latest state.
///
/// # Errors
/// [`GatewayError::InvalidRequest`] when the key is empty, the id would exceed
/// [`REQUEST_ID_MAX`], or it holds anything but visible ASCII.
pub fn request_id(key: &str, suffix: &str) -> Result<String, GatewayError> {
    let id = format!("{key}{suffix}");
    if key.is_empty() || id.len() > REQUEST_ID_MAX || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(GatewayError::InvalidRequest(format!(
            "paypal: idempotency key {key:?} does not make a PayPal-Request-Id (visible ASCII, at \
             most {REQUEST_ID_MAX} bytes with {suffix:?})"
        )));
    }
    Ok(id)
}

/// A PayPal id that goes into a URL path (an order or capture id) or a vault id: letters,
/// digits, `_` and `-` only, so nothing can change the path it is put in.
///
/// # Errors
/// [`GatewayError::InvalidRequest`] naming `what`.
pub fn checked_id<'a>(id: &'a str, what: &str) -> Result<&'a str, GatewayError> {
    let ok = !id.is_empty()
        && id.len() <= VAULT_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(id)
    } else {
        Err(GatewayError::InvalidRequest(format!(
            "paypal: {what} {id:?} is not a PayPal id"
        )))
    }
}

/// `text` cut to PayPal's [`DESCRIPTION_MAX_CHARS`] characters (PayPal refuses longer ones; a
/// description is for people, so cutting it is harmless).
pub fn description(text: &str) -> &str {
    match text.char_indices().nth(DESCRIPTION_MAX_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_the_key_and_a_suffix_within_paypal_limits() {
        assert_eq!(request_id("charge-1", ":order").unwrap(), "charge-1:order");
        assert_eq!(request_id("refund-1", "").unwrap(), "refund-1");
        let longest = "k".repeat(REQUEST_ID_MAX - ":capture".len());
        assert!(request_id(&longest, ":capture").is_ok());
        let too_long = format!("{longest}k");
        for (key, suffix) in [
            ("", ""),
            (too_long.as_str(), ":capture"),
            ("a b", ""),
            ("é", ""),
        ] {
            let e = request_id(key, suffix).unwrap_err();
            assert!(matches!(e, GatewayError::InvalidRequest(_)), "{key:?}");
        }
    }

    #[test]
    fn ids_in_paths_are_plain() {
        assert_eq!(
            checked_id("3TX86347GL842074B", "order").unwrap(),
            "3TX86347GL842074B"
        );
        assert!(checked_id("vault_ok-1", "vault id").is_ok());
        for bad in ["", "../v1/x", "a/b", "a?b", "a b", "tok#1"] {
            assert!(checked_id(bad, "capture").is_err(), "{bad:?}");
        }
        assert!(checked_id(&"a".repeat(VAULT_ID_MAX + 1), "vault id").is_err());
    }

    #[test]
    fn descriptions_are_cut_on_a_character_boundary() {
        assert_eq!(description("Pro plan"), "Pro plan");
        let long = "é".repeat(DESCRIPTION_MAX_CHARS + 5);
        assert_eq!(description(&long).chars().count(), DESCRIPTION_MAX_CHARS);
    }
}
