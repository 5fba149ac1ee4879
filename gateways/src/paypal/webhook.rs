//! Checking a PayPal webhook delivery: PayPal signs it with a certificate and verifies it for us
//! (`POST /v1/notifications/verify-webhook-signature`) from the delivery's five `PAYPAL-*`
//! headers, our webhook's id and the event.
//!
//! PayPal checks the signature over the event's exact bytes, so the event must reach it as it was
//! delivered: [`PaypalGateway::verify_webhook_raw`] splices the delivered body into the request
//! unchanged. [`PaypalGateway::verify_webhook`] takes a parsed event and serializes it again
//! (`serde_json` sorts an object's keys), which real PayPal answers with `FAILURE` unless the
//! delivery happened to be in that form: prefer the raw one.

use serde_json::{Value, json};

use super::PaypalGateway;
use super::outcome;
use super::wire::Verification;
use crate::gateway::GatewayError;

/// The path of PayPal's verification endpoint.
pub const VERIFY_PATH: &str = "/v1/notifications/verify-webhook-signature";

/// The `PAYPAL-*` headers of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaypalSignatureHeaders {
    /// `PAYPAL-AUTH-ALGO`, e.g. `SHA256withRSA`.
    pub auth_algo: String,
    /// `PAYPAL-CERT-URL`: the certificate PayPal signed with.
    pub cert_url: String,
    /// `PAYPAL-TRANSMISSION-ID`.
    pub transmission_id: String,
    /// `PAYPAL-TRANSMISSION-SIG`: the signature.
    pub transmission_sig: String,
    /// `PAYPAL-TRANSMISSION-TIME`.
    pub transmission_time: String,
}

impl PaypalSignatureHeaders {
    /// From a lookup of lower-case header names (`paypal-auth-algo`, …); `None` when any of the
    /// five is missing or empty.
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Self> {
        let one = |name: &str| {
            get(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Some(Self {
            auth_algo: one("paypal-auth-algo")?,
            cert_url: one("paypal-cert-url")?,
            transmission_id: one("paypal-transmission-id")?,
            transmission_sig: one("paypal-transmission-sig")?,
            transmission_time: one("paypal-transmission-time")?,
        })
    }

    /// From `(name, value)` pairs, names in any case; `None` when any of the five is missing.
    pub fn from_pairs(pairs: &[(String, String)]) -> Option<Self> {
        Self::from_lookup(|name| {
            pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }
}

/// The verification request with `event` (a JSON object's text) spliced in byte for byte.
///
/// # Errors
/// [`GatewayError::InvalidRequest`] when `webhook_id` is empty or `event` is not a JSON object.
pub fn verify_body(
    webhook_id: &str,
    headers: &PaypalSignatureHeaders,
    event: &[u8],
) -> Result<String, GatewayError> {
    let refused = |why: &str| GatewayError::InvalidRequest(format!("paypal webhook: {why}"));
    if webhook_id.is_empty() {
        return Err(refused("no webhook id"));
    }
    let text = std::str::from_utf8(event).map_err(|_| refused("the body is not UTF-8"))?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => {}
        _ => return Err(refused("the body is not a JSON object")),
    }
    let head = json!({
        "auth_algo": headers.auth_algo,
        "cert_url": headers.cert_url,
        "transmission_id": headers.transmission_id,
        "transmission_sig": headers.transmission_sig,
        "transmission_time": headers.transmission_time,
        "webhook_id": webhook_id,
    })
    .to_string();
    let open = head.strip_suffix('}').unwrap_or(&head);
    Ok(format!("{open},\"webhook_event\":{}}}", text.trim()))
}

impl PaypalGateway {
    /// Whether PayPal vouches for a delivery of `body` (the delivered bytes) with `headers` to
    /// our webhook `webhook_id`: `SUCCESS` is `true`, `FAILURE` `false`.
    ///
    /// # Errors
    /// What the call failed with; [`GatewayError::InvalidRequest`] for a body that is not a
    /// JSON object.
    pub async fn verify_webhook_raw(
        &self,
        webhook_id: &str,
        headers: &PaypalSignatureHeaders,
        body: &[u8],
    ) -> Result<bool, GatewayError> {
        let request = verify_body(webhook_id, headers, body)?;
        let answer: Verification = self.call(VERIFY_PATH, None, request).await?.read()?;
        outcome::verification(&answer.verification_status)
    }

    /// [`verify_webhook_raw`](Self::verify_webhook_raw) of a parsed event, serialized again
    /// (see the module's note: real PayPal needs the delivered bytes).
    ///
    /// # Errors
    /// As [`verify_webhook_raw`](Self::verify_webhook_raw).
    pub async fn verify_webhook(
        &self,
        webhook_id: &str,
        headers: &PaypalSignatureHeaders,
        body: &Value,
    ) -> Result<bool, GatewayError> {
        self.verify_webhook_raw(webhook_id, headers, body.to_string().as_bytes())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers() -> PaypalSignatureHeaders {
        PaypalSignatureHeaders {
            auth_algo: "SHA256withRSA".into(),
            cert_url: "https://api.paypal.com/v1/notifications/certs/CERT-1".into(),
            transmission_id: "69cd13f0-d67a-11e5-baa3-778b53f4ae55".into(),
            transmission_sig: "c2ln".into(),
            transmission_time: "2016-02-18T20:01:35Z".into(),
        }
    }

    #[test]
    fn headers_come_from_lower_case_lookups_or_pairs_and_all_five_are_needed() {
        let pairs: Vec<(String, String)> = [
            ("PAYPAL-AUTH-ALGO", "SHA256withRSA"),
            (
                "Paypal-Cert-Url",
                "https://api.paypal.com/v1/notifications/certs/CERT-1",
            ),
            (
                "paypal-transmission-id",
                "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
            ),
            ("paypal-transmission-sig", "c2ln"),
            ("paypal-transmission-time", "2016-02-18T20:01:35Z"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(PaypalSignatureHeaders::from_pairs(&pairs), Some(headers()));
        for missing in 0..pairs.len() {
            let mut some = pairs.clone();
            some.remove(missing);
            assert_eq!(PaypalSignatureHeaders::from_pairs(&some), None, "{missing}");
        }
        let mut empty = pairs.clone();
        empty[3].1 = " ".into();
        assert_eq!(PaypalSignatureHeaders::from_pairs(&empty), None);
    }

    #[test]
    fn the_event_is_spliced_in_byte_for_byte() {
        let event = br#"{"id":"WH-1","event_version":"1.0","resource":{"amount":{"value":"100.00"},"breakdown":{}}}"#;
        let body = verify_body("1JE4291016473214C", &headers(), event).unwrap();
        assert!(body.ends_with(&format!(
            ",\"webhook_event\":{}}}",
            std::str::from_utf8(event).unwrap()
        )));
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["webhook_id"], "1JE4291016473214C");
        assert_eq!(parsed["transmission_sig"], "c2ln");
        assert_eq!(parsed["webhook_event"]["resource"]["breakdown"], json!({}));
    }

    #[test]
    fn only_json_objects_and_a_webhook_id_are_sent() {
        for bad in [&b"[1]"[..], b"not json", b"{", b"\xff"] {
            assert!(verify_body("W1", &headers(), bad).is_err());
        }
        assert!(verify_body("", &headers(), b"{}").is_err());
    }
}
