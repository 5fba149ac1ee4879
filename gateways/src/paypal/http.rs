//! One PayPal call over HTTP: the bearer token (fetched and cached by [`super::token`]), our
//! `PayPal-Request-Id`, and one retry after a 401 with a new token (PayPal did nothing with a
//! request it refused to authenticate, so sending it again is safe).

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::de::DeserializeOwned;

use super::PaypalGateway;
use super::outcome::{self, ErrorBody};
use super::token::{OauthError, TokenAnswer, token_error};
use crate::gateway::GatewayError;

/// The path of PayPal's token endpoint.
pub const TOKEN_PATH: &str = "/v1/oauth2/token";

/// PayPal's answer to an authenticated call.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A 2xx and its body.
    Done(Vec<u8>),
    /// Any other status and PayPal's error body (empty when it sent none we can read).
    Refused(u16, ErrorBody),
}

impl Answer {
    /// The body of a 2xx as `T`; a refusal as the [`GatewayError`] it means.
    ///
    /// An answer we cannot read counts as no answer ([`GatewayError::Unavailable`]): the same
    /// request id asked again gets the same answer.
    pub fn read<T: DeserializeOwned>(self) -> Result<T, GatewayError> {
        match self {
            Self::Done(body) => parse(&body),
            Self::Refused(status, e) => Err(outcome::error_only(status, &e)),
        }
    }
}

/// A 2xx body as `T`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::Unavailable(format!("paypal: unreadable answer: {e}")))
}

/// A call that got no answer: a timeout, or no connection (or an answer cut short).
fn transport_error(e: &reqwest::Error) -> GatewayError {
    if e.is_timeout() {
        GatewayError::Timeout
    } else if e.is_builder() {
        GatewayError::InvalidRequest(format!("paypal: {e}"))
    } else if e.is_connect() {
        GatewayError::Unreachable(format!("paypal: {e}"))
    } else {
        GatewayError::Unavailable(format!("paypal: {e}"))
    }
}

impl PaypalGateway {
    /// A bearer token: the cached one, or a new one (`force`: always a new one).
    pub(crate) async fn token(&self, force: bool) -> Result<String, GatewayError> {
        self.tokens.get(force, || self.fetch_token()).await
    }

    /// `POST /v1/oauth2/token` with our client id and secret (Basic).
    async fn fetch_token(&self) -> Result<TokenAnswer, GatewayError> {
        let response = self
            .http
            .post(format!("{}{TOKEN_PATH}", self.base))
            .basic_auth(&self.config.client_id, Some(&self.config.client_secret))
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| transport_error(&e))?;
        if (200..300).contains(&status) {
            parse(&body)
        } else {
            let e: OauthError = serde_json::from_slice(&body).unwrap_or_default();
            Err(token_error(status, &e))
        }
    }

    /// `POST path` with the JSON `body`, authenticated, under `request_id` when given; a 401 drops
    /// the token and tries once more with a new one.
    pub(crate) async fn call(
        &self,
        path: &str,
        request_id: Option<&str>,
        body: String,
    ) -> Result<Answer, GatewayError> {
        let token = self.token(false).await?;
        let (status, answer) = self.send(&token, path, request_id, &body).await?;
        let (status, answer) = if status == 401 {
            self.tokens.forget(&token).await;
            let token = self.token(false).await?;
            self.send(&token, path, request_id, &body).await?
        } else {
            (status, answer)
        };
        if (200..300).contains(&status) {
            Ok(Answer::Done(answer))
        } else {
            Ok(Answer::Refused(
                status,
                serde_json::from_slice(&answer).unwrap_or_default(),
            ))
        }
    }

    /// One request; its status and body.
    async fn send(
        &self,
        token: &str,
        path: &str,
        request_id: Option<&str>,
        body: &str,
    ) -> Result<(u16, Vec<u8>), GatewayError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .header("Prefer", "return=representation")
            .body(body.to_string());
        if let Some(id) = request_id {
            request = request.header("PayPal-Request-Id", id);
        }
        let response = request.send().await.map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let answer = response.bytes().await.map_err(|e| transport_error(&e))?;
        Ok((status, answer.to_vec()))
    }
}
