//! A local PayPal: OAuth2 tokens, Orders v2 (created with a vault id, then captured), refunds of
//! captures and webhook verification, with PayPal's JSON objects, error bodies and
//! `PayPal-Request-Id` replays, and knobs for the failures tests need.
//!
//! Vault ids: `vault_ok` (or any id starting so) pays; `vault_pending` leaves the capture
//! `PENDING` (`PENDING_REVIEW`); `vault_capture_declined` gives a capture `DECLINED`;
//! `vault_declined`, `vault_refused`, `vault_action_required` and `vault_cannot_pay` make the
//! capture a 422 with `INSTRUMENT_DECLINED`, `TRANSACTION_REFUSED`, `PAYER_ACTION_REQUIRED` and
//! `PAYER_CANNOT_PAY`; any other id is a 400 `INVALID_PARAMETER_VALUE` at the order's creation.
//! A repeated `PayPal-Request-Id` gets the stored answer, whatever the new request says, as at
//! PayPal. Fees (3 %) and the payer are illustrative.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ledger::money::Currency;
use serde_json::{Value, json};

use crate::paypal::amount::{PaypalAmount, format_value, parse_value};

const HOST: &str = "https://api.sandbox.paypal.com";
const MERCHANT: (&str, &str) = ("merchant@example.com", "M4ZJ8Y6EHXTLB");
const SCOPE: &str = "https://uri.paypal.com/services/payments/payment https://uri.paypal.com/services/payments/refund https://uri.paypal.com/services/applications/verify-webhook-signature openid";

/// What the stand-in has seen and will do next.
#[derive(Default)]
struct Book {
    credentials: (String, String),
    /// Access token → when it stops being accepted.
    tokens: HashMap<String, Instant>,
    token_lifetime: Duration,
    tokens_issued: u64,
    orders: HashMap<String, Value>,
    captures: HashMap<String, Value>,
    refund_objects: HashMap<String, Value>,
    /// Capture id → minor units refunded.
    refunded: HashMap<String, i64>,
    /// `PayPal-Request-Id` → the stored answer.
    answers: HashMap<String, (u16, Value)>,
    captured: u64,
    refunds: u64,
    verifications: u64,
    valid_signature: String,
    last_verification: Option<String>,
    last_capture: Option<String>,
    knobs: super::knobs::Knobs,
    /// (method, path, PayPal-Request-Id) of every request, in order.
    requests: Vec<(String, String, Option<String>)>,
    next_id: u64,
}

type Shared = Arc<Mutex<Book>>;

/// A running stand-in on `127.0.0.1`; stops when dropped.
pub struct PaypalStandIn {
    base: String,
    book: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PaypalStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(book: &Shared) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PaypalStandIn {
    /// Starts on a free port, accepting the REST app `client_id` / `secret`.
    ///
    /// # Panics
    /// When no port can be bound (a test fixture).
    pub async fn start(client_id: &str, secret: &str) -> Self {
        let book = Arc::new(Mutex::new(Book {
            credentials: (client_id.into(), secret.into()),
            token_lifetime: Duration::from_secs(32_400),
            valid_signature: "valid".into(),
            ..Book::default()
        }));
        let app = Router::new()
            .route("/v1/oauth2/token", post(token))
            .route("/v2/checkout/orders", post(create_order))
            .route("/v2/checkout/orders/{id}/capture", post(capture_order))
            .route("/v2/payments/captures/{id}/refund", post(refund_capture))
            .route("/v1/notifications/verify-webhook-signature", post(verify))
            .with_state(book.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the PayPal stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            book,
            task,
        }
    }

    /// The API base for this stand-in (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Captures that took money (`COMPLETED`; a replay does not count again).
    pub fn captures(&self) -> u64 {
        lock(&self.book).captured
    }

    /// Refunds made.
    pub fn refunds(&self) -> u64 {
        lock(&self.book).refunds
    }

    /// Access tokens issued.
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.book).tokens_issued
    }

    /// Webhook verifications answered.
    pub fn verifications(&self) -> u64 {
        lock(&self.book).verifications
    }

    /// `(method, path, PayPal-Request-Id)` of every request so far.
    pub fn requests(&self) -> Vec<(String, String, Option<String>)> {
        lock(&self.book).requests.clone()
    }

    /// The capture `id` as PayPal sends it in webhooks (for building them).
    pub fn capture(&self, id: &str) -> Option<Value> {
        lock(&self.book).captures.get(id).cloned()
    }

    /// The last capture made, whatever its status.
    pub fn last_capture(&self) -> Option<Value> {
        let b = lock(&self.book);
        b.last_capture
            .as_ref()
            .and_then(|id| b.captures.get(id))
            .cloned()
    }

    /// The refund `id`.
    pub fn refund(&self, id: &str) -> Option<Value> {
        lock(&self.book).refund_objects.get(id).cloned()
    }

    /// The body of the last webhook verification request, as received.
    pub fn last_verification(&self) -> Option<String> {
        lock(&self.book).last_verification.clone()
    }

    /// Verifications answer `SUCCESS` for this `transmission_sig` only (`"valid"` until set).
    pub fn set_valid_signature(&self, sig: &str) {
        lock(&self.book).valid_signature = sig.into();
    }

    /// Every token issued so far is refused (401) from now on.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        lock(&self.book)
            .tokens
            .values_mut()
            .for_each(|until| *until = now);
    }

    /// Tokens issued from now on last this long (whole seconds; PayPal's are nine hours).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.book).token_lifetime = lifetime;
    }

    /// The next `n` mutating requests (orders, captures, refunds) get a 500 and change nothing.
    pub fn fail_before_acting(&self, n: u32) {
        lock(&self.book).knobs.fail_before = n;
    }

    /// The next `n` mutating requests act, then get a 500: the caller never learns the outcome.
    pub fn fail_after_acting(&self, n: u32) {
        lock(&self.book).knobs.fail_after = n;
    }

    /// Every mutating request (and every verification) waits this long before it is handled.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.book).knobs.delay = delay;
    }

    /// Mutating requests act at once, then wait this long before answering.
    pub fn set_answer_delay(&self, delay: Duration) {
        lock(&self.book).knobs.answer_delay = delay;
    }
}

async fn token(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut b = lock(&book);
    b.requests
        .push(("POST".into(), "/v1/oauth2/token".into(), None));
    let (id, secret) = &b.credentials;
    let expected = format!("Basic {}", base64(format!("{id}:{secret}").as_bytes()));
    if header(&headers, "authorization").as_deref() != Some(expected.as_str()) {
        let e = json!({ "error": "invalid_client", "error_description": "Client Authentication failed" });
        return respond(401, &e);
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    if !form
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "client_credentials")
    {
        let e =
            json!({ "error": "unsupported_grant_type", "error_description": "Grant Type is NULL" });
        return respond(400, &e);
    }
    let n = next_number(&mut b);
    let access_token = format!("A21AAStandIn{n:020}");
    let lifetime = b.token_lifetime;
    b.tokens
        .insert(access_token.clone(), Instant::now() + lifetime);
    b.tokens_issued += 1;
    let answer = json!({
        "scope": SCOPE, "access_token": access_token, "token_type": "Bearer",
        "app_id": "APP-80W284485P519543T", "expires_in": lifetime.as_secs(),
        "nonce": format!("{}StandIn{n:08}", now()),
    });
    respond(200, &answer)
}

async fn create_order(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let path = "/v2/checkout/orders".to_string();
    mutate(&book, path, &headers, |b| create(b, &body)).await
}

async fn capture_order(
    State(book): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v2/checkout/orders/{id}/capture");
    mutate(&book, path, &headers, |b| capture(b, &id)).await
}

async fn refund_capture(
    State(book): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v2/payments/captures/{id}/refund");
    mutate(&book, path, &headers, |b| refund(b, &id, &body)).await
}

async fn verify(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let delay = lock(&book).knobs.delay;
    tokio::time::sleep(delay).await;
    let mut b = lock(&book);
    let path = "/v1/notifications/verify-webhook-signature";
    b.requests.push(("POST".into(), path.into(), None));
    if !authorized(&b, &headers) {
        return respond(401, &invalid_token());
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let fields = [
        "auth_algo",
        "cert_url",
        "transmission_id",
        "transmission_sig",
        "transmission_time",
        "webhook_id",
    ];
    let missing = fields
        .into_iter()
        .find(|f| request[*f].as_str().is_none_or(str::is_empty));
    if let Some(field) =
        missing.or_else(|| (!request["webhook_event"].is_object()).then_some("webhook_event"))
    {
        let (s, e) = invalid(
            &format!("/{field}"),
            "MISSING_REQUIRED_PARAMETER",
            "A required field is missing.",
        );
        return respond(s, &e);
    }
    b.verifications += 1;
    b.last_verification = Some(String::from_utf8_lossy(&body).into_owned());
    let ok = request["transmission_sig"] == json!(b.valid_signature);
    respond(
        200,
        &json!({ "verification_status": if ok { "SUCCESS" } else { "FAILURE" } }),
    )
}

/// The log, the delay, authentication, replays and injected failures around `act`.
async fn mutate(
    book: &Shared,
    path: String,
    headers: &HeaderMap,
    act: impl FnOnce(&mut Book) -> (u16, Value),
) -> Response {
    let request_id = header(headers, "paypal-request-id");
    let delay = {
        let mut b = lock(book);
        b.requests.push(("POST".into(), path, request_id.clone()));
        b.knobs.delay
    };
    tokio::time::sleep(delay).await;
    let (response, answer_delay) = decide(&mut lock(book), headers, request_id, act);
    tokio::time::sleep(answer_delay).await;
    response
}

/// The answer to a mutating request, and how long to wait before giving it.
fn decide(
    b: &mut Book,
    headers: &HeaderMap,
    request_id: Option<String>,
    act: impl FnOnce(&mut Book) -> (u16, Value),
) -> (Response, Duration) {
    if !authorized(b, headers) {
        return (respond(401, &invalid_token()), Duration::ZERO);
    }
    if b.knobs.fails_before() {
        return (server_error(), Duration::ZERO);
    }
    if let Some((status, answer)) = request_id.as_ref().and_then(|id| b.answers.get(id)) {
        return (respond(*status, answer), Duration::ZERO);
    }
    let (status, answer) = act(b);
    if let Some(id) = request_id {
        b.answers.insert(id, (status, answer.clone()));
    }
    if b.knobs.loses_answer() {
        return (server_error(), Duration::ZERO);
    }
    (respond(status, &answer), b.knobs.answer_delay)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn authorized(b: &Book, headers: &HeaderMap) -> bool {
    header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        .and_then(|t| b.tokens.get(&t).copied())
        .is_some_and(|until| Instant::now() < until)
}

fn invalid_token() -> Value {
    json!({ "error": "invalid_token", "error_description": "Token signature verification failed" })
}

fn respond(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, axum::Json(body.clone())).into_response();
    r.headers_mut()
        .insert("paypal-debug-id", HeaderValue::from_static("f0standin0001"));
    r
}

fn server_error() -> Response {
    let body = json!({ "name": "INTERNAL_SERVER_ERROR", "debug_id": "f0standin0001",
        "message": "An internal server error has occurred.",
        "links": [{ "href": "https://developer.paypal.com/api/rest/reference/orders/v2/errors/#INTERNAL_SERVER_ERROR",
            "rel": "information_link", "method": "GET" }] });
    respond(500, &body)
}

fn next_number(b: &mut Book) -> u64 {
    b.next_id += 1;
    b.next_id
}

/// A PayPal-style id: 17 upper-case letters and digits.
fn next_id(b: &mut Book, prefix: &str) -> String {
    let n = next_number(b);
    format!("{prefix}{n:0width$}", width = 17 - prefix.len())
}

/// An amount in `currency` as PayPal writes it.
fn money(currency: Currency, minor: i64) -> Value {
    json!(PaypalAmount {
        currency_code: currency.code().to_ascii_uppercase(),
        value: format_value(minor, currency.exponent()).unwrap_or_default(),
    })
}

/// A PayPal amount object read back: its currency and minor units, or why not.
fn read_amount(v: &Value) -> Result<(Currency, i64), (u16, Value)> {
    let a: PaypalAmount = serde_json::from_value(v.clone()).map_err(|_| {
        invalid(
            "/amount",
            "MISSING_REQUIRED_PARAMETER",
            "A required field is missing.",
        )
    })?;
    let currency = Currency::parse(&a.currency_code).map_err(|_| {
        unprocessable(
            "CURRENCY_NOT_SUPPORTED",
            "Currency code is not currently supported.",
        )
    })?;
    let minor = parse_value(&a.value, currency.exponent()).ok_or_else(|| {
        unprocessable("DECIMAL_PRECISION", "The value of the field should not be more than the currency's decimals, or is malformed.")
    })?;
    if minor <= 0 {
        return Err(invalid(
            "/amount/value",
            "INVALID_PARAMETER_VALUE",
            "The value of a field is invalid.",
        ));
    }
    Ok((currency, minor))
}

/// A 400 `INVALID_REQUEST` about `field`.
fn invalid(field: &str, issue: &str, description: &str) -> (u16, Value) {
    let detail =
        json!({ "field": field, "location": "body", "issue": issue, "description": description });
    error(
        400,
        "INVALID_REQUEST",
        "Request is not well-formed or violates schema.",
        detail,
    )
}

/// A 422 `UNPROCESSABLE_ENTITY` with `issue`.
fn unprocessable(issue: &str, description: &str) -> (u16, Value) {
    let detail = json!({ "issue": issue, "description": description });
    error(
        422,
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed.",
        detail,
    )
}

/// A 404 `RESOURCE_NOT_FOUND` for an unknown id in the path.
fn not_found() -> (u16, Value) {
    let detail = json!({ "location": "path", "issue": "INVALID_RESOURCE_ID",
        "description": "Specified resource ID does not exist." });
    error(
        404,
        "RESOURCE_NOT_FOUND",
        "The specified resource does not exist.",
        detail,
    )
}

/// PayPal's error body with one detail.
fn error(status: u16, name: &str, message: &str, detail: Value) -> (u16, Value) {
    let link = format!(
        "https://developer.paypal.com/docs/api/orders/v2/#error-{}",
        detail["issue"].as_str().unwrap_or(name)
    );
    let body = json!({ "name": name, "message": message, "debug_id": "f0standin0001", "details": [detail],
        "links": [{ "href": link, "rel": "information_link", "method": "GET" }] });
    (status, body)
}

fn links(items: &[(&str, &str, &str)]) -> Value {
    items
        .iter()
        .map(|(path, rel, method)| json!({ "href": format!("{HOST}{path}"), "rel": rel, "method": method }))
        .collect()
}

/// What a vault id does at capture: `Ok(status)` of the capture, or a declining issue.
fn fate(vault_id: &str) -> Option<Result<&'static str, (&'static str, &'static str)>> {
    Some(match vault_id {
        "vault_pending" => Ok("PENDING"),
        "vault_capture_declined" => Ok("DECLINED"),
        "vault_declined" => Err((
            "INSTRUMENT_DECLINED",
            "The instrument presented was either declined by the processor or bank, or it can't be used for this payment.",
        )),
        "vault_refused" => Err(("TRANSACTION_REFUSED", "The request was refused.")),
        "vault_action_required" => Err((
            "PAYER_ACTION_REQUIRED",
            "Payer needs to perform the following action before proceeding with payment.",
        )),
        "vault_cannot_pay" => Err((
            "PAYER_CANNOT_PAY",
            "Combination of payer and payee settings do not allow this payment.",
        )),
        ok if ok.starts_with("vault_ok") => Ok("COMPLETED"),
        _ => return None,
    })
}

fn payer() -> Value {
    json!({ "email_address": "customer@example.com", "account_id": "9QW5DK3RTHXVN",
        "account_status": "VERIFIED", "name": { "given_name": "John", "surname": "Doe" },
        "address": { "country_code": "US" } })
}

/// `POST /v2/checkout/orders`: an `APPROVED` order (the vaulted payer needs no approval).
fn create(b: &mut Book, body: &[u8]) -> (u16, Value) {
    let Ok(order) = serde_json::from_slice::<Value>(body) else {
        return invalid(
            "/",
            "MALFORMED_REQUEST_JSON",
            "The request JSON is not well formed.",
        );
    };
    if order["intent"] != "CAPTURE" {
        return invalid(
            "/intent",
            "INVALID_PARAMETER_VALUE",
            "The stand-in only creates CAPTURE orders.",
        );
    }
    let unit = &order["purchase_units"][0];
    if let Err(e) = read_amount(&unit["amount"]) {
        return e;
    }
    let Some(vault_id) = order["payment_source"]["paypal"]["vault_id"].as_str() else {
        return invalid(
            "/payment_source/paypal/vault_id",
            "MISSING_REQUIRED_PARAMETER",
            "A required field is missing.",
        );
    };
    if fate(vault_id).is_none() {
        return invalid(
            "/payment_source/paypal/vault_id",
            "INVALID_PARAMETER_VALUE",
            &format!(
                "The vault_id {vault_id:?} does not exist or does not belong to this merchant."
            ),
        );
    }
    let id = next_id(b, "5O");
    let mut pu = json!({ "reference_id": "default", "amount": unit["amount"],
        "payee": { "email_address": MERCHANT.0, "merchant_id": MERCHANT.1 } });
    for field in ["custom_id", "description", "invoice_id"] {
        if let Some(v) = unit.get(field) {
            pu[field] = v.clone();
        }
    }
    let mut paypal = payer();
    paypal["attributes"] = json!({ "vault": { "id": vault_id, "status": "VAULTED" } });
    let o = json!({ "id": id, "intent": "CAPTURE", "status": "APPROVED",
        "payment_source": { "paypal": paypal }, "purchase_units": [pu], "create_time": now(),
        "links": links(&[(&format!("/v2/checkout/orders/{id}"), "self", "GET"),
            (&format!("/v2/checkout/orders/{id}"), "update", "PATCH"),
            (&format!("/v2/checkout/orders/{id}/capture"), "capture", "POST")]) });
    b.orders.insert(id, o.clone());
    (201, o)
}

/// `POST /v2/checkout/orders/{id}/capture`: the order `COMPLETED` with its capture, or a decline.
fn capture(b: &mut Book, order_id: &str) -> (u16, Value) {
    let Some(mut order) = b.orders.get(order_id).cloned() else {
        return not_found();
    };
    if order["status"] == "COMPLETED" {
        return unprocessable(
            "ORDER_ALREADY_CAPTURED",
            "Order already captured. If 'intent=CAPTURE' only one capture per order is allowed.",
        );
    }
    let vault_id = order["payment_source"]["paypal"]["attributes"]["vault"]["id"]
        .as_str()
        .unwrap_or_default();
    let status = match fate(vault_id) {
        Some(Ok(status)) => status,
        Some(Err((issue, description))) => return unprocessable(issue, description),
        None => return not_found(),
    };
    let unit = order["purchase_units"][0].clone();
    let Ok((currency, gross)) = read_amount(&unit["amount"]) else {
        return not_found();
    };
    let id = next_id(b, "8C");
    // A declined capture cost nothing: no fee, the net is the gross (as PayPal shows it).
    let cost = if status == "DECLINED" { 0 } else { fee(gross) };
    let mut breakdown = json!({ "gross_amount": money(currency, gross), "net_amount": money(currency, gross - cost) });
    if status != "DECLINED" {
        breakdown["paypal_fee"] = money(currency, cost);
    }
    let mut c = json!({ "id": id, "status": status, "amount": unit["amount"], "final_capture": true,
        "seller_protection": { "status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION"] },
        "seller_receivable_breakdown": breakdown,
        "links": links(&[(&format!("/v2/payments/captures/{id}"), "self", "GET"),
            (&format!("/v2/payments/captures/{id}/refund"), "refund", "POST"),
            (&format!("/v2/checkout/orders/{order_id}"), "up", "GET")]),
        "create_time": now(), "update_time": now() });
    if status == "PENDING" {
        c["status_details"] = json!({ "reason": "PENDING_REVIEW" });
    }
    if let Some(custom_id) = unit.get("custom_id") {
        c["custom_id"] = custom_id.clone();
    }
    let in_order = c.clone();
    c["supplementary_data"] = json!({ "related_ids": { "order_id": order_id } });
    c["payee"] = json!({ "email_address": MERCHANT.0, "merchant_id": MERCHANT.1 });
    order["status"] = json!("COMPLETED");
    order["purchase_units"][0]["payments"] = json!({ "captures": [in_order] });
    order["payer"] = json!({ "name": { "given_name": "John", "surname": "Doe" },
        "email_address": "customer@example.com", "payer_id": "9QW5DK3RTHXVN", "address": { "country_code": "US" } });
    order["links"] = links(&[(&format!("/v2/checkout/orders/{order_id}"), "self", "GET")]);
    if status == "COMPLETED" {
        b.captured += 1;
    }
    b.captures.insert(id.clone(), c);
    b.last_capture = Some(id);
    b.orders.insert(order_id.to_string(), order.clone());
    (201, order)
}

/// `POST /v2/payments/captures/{id}/refund`: never beyond what the capture has left.
fn refund(b: &mut Book, capture_id: &str, body: &[u8]) -> (u16, Value) {
    let Some(capture) = b.captures.get(capture_id).cloned() else {
        return not_found();
    };
    let Ok((currency, gross)) = read_amount(&capture["amount"]) else {
        return not_found();
    };
    match capture["status"].as_str() {
        Some("PENDING") => {
            return unprocessable(
                "PENDING_CAPTURE",
                "Cannot initiate a refund as the capture is pending.",
            );
        }
        Some("DECLINED" | "FAILED") => {
            return unprocessable(
                "REFUND_NOT_ALLOWED",
                "Only a completed capture can be refunded.",
            );
        }
        _ => {}
    }
    let done = b.refunded.get(capture_id).copied().unwrap_or(0);
    if done >= gross {
        return unprocessable(
            "CAPTURE_FULLY_REFUNDED",
            "The capture has already been fully refunded.",
        );
    }
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let amount = match request.get("amount") {
        None => gross - done,
        Some(a) => match read_amount(a) {
            Ok((c, _)) if c != currency => {
                return unprocessable(
                    "CURRENCY_MISMATCH",
                    "Refund must be in the same currency as the capture.",
                );
            }
            Ok((_, minor)) => minor,
            Err(e) => return e,
        },
    };
    if done + amount > gross {
        return unprocessable(
            "REFUND_AMOUNT_EXCEEDED",
            "The refund amount must be less than or equal to the capture amount that has not yet been refunded.",
        );
    }
    let id = next_id(b, "1R");
    let returned = fee(amount);
    let mut r = json!({ "id": id, "amount": money(currency, amount),
        "seller_payable_breakdown": { "gross_amount": money(currency, amount),
            "paypal_fee": money(currency, returned), "net_amount": money(currency, amount - returned),
            "total_refunded_amount": money(currency, done + amount) },
        "payer": { "email_address": MERCHANT.0, "merchant_id": MERCHANT.1 },
        "status": "COMPLETED", "create_time": now(), "update_time": now(),
        "links": links(&[(&format!("/v2/payments/refunds/{id}"), "self", "GET"),
            (&format!("/v2/payments/captures/{capture_id}"), "up", "GET")]) });
    for field in ["invoice_id", "note_to_payer", "custom_id"] {
        if let Some(v) = request.get(field) {
            r[field] = v.clone();
        }
    }
    b.refunded.insert(capture_id.to_string(), done + amount);
    b.refunds += 1;
    if let Some(c) = b.captures.get_mut(capture_id) {
        let full = done + amount == gross;
        c["status"] = json!(if full {
            "REFUNDED"
        } else {
            "PARTIALLY_REFUNDED"
        });
        c["update_time"] = json!(now());
    }
    b.refund_objects.insert(id, r.clone());
    (201, r)
}

/// PayPal's (illustrative) 3 % of `minor`, rounded down, without overflow.
fn fee(minor: i64) -> i64 {
    minor / 100 * 3 + minor % 100 * 3 / 100
}

/// Standard base64 (RFC 4648, with padding), for the expected Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Now as PayPal writes times: `2024-02-03T18:20:11Z`.
fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm, years ≥ 1970).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let (h, m, s) = (rest / 3_600, rest % 3_600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_rfc_4648() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("id:s3crét", "aWQ6czNjcsOpdA=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
    }

    #[test]
    fn times_are_utc_in_paypal_form() {
        let t = now();
        assert_eq!(
            (t.len(), &t[4..5], &t[10..11], &t[19..]),
            (20, "-", "T", "Z"),
            "{t}"
        );
        assert!(t.as_str() > "2024-01-01T00:00:00Z", "{t}");
    }
}
