//! A local Stripe: PaymentIntents (created and confirmed at once), refunds, customers and
//! payment methods attached to them (`pm_card_*`; a `…_fr` card is issued in France), with
//! Stripe's JSON objects, error bodies and idempotency rules, and knobs for the failures tests need.
//!
//! Tokens: `pm_card_visa`, `pm_card_mastercard`, `tok_visa`, `tok_mastercard` succeed;
//! `pm_card_chargeDeclined[InsufficientFunds|Fraudulent|ExpiredCard|IncorrectCvc|ProcessingError]`
//! (or `tok_…`) decline as Stripe's test cards do (402 `card_error` with the PaymentIntent);
//! `pm_card_authenticationRequired` leaves the PaymentIntent in `requires_action`;
//! `pm_card_riskLevelElevated`, `…Highest` (or `tok_…`) succeed with that Radar risk level (see
//! `capture`, for authorizations); anything else is a 400 `resource_missing`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

mod capture;

/// What the stand-in has seen and will do next.
#[derive(Default)]
struct Book {
    intents: HashMap<String, Value>,
    /// Charge objects by id (a PaymentIntent's `latest_charge`).
    charges: HashMap<String, Value>,
    customers: HashMap<String, Value>,
    /// Payment method → the customer it is attached to.
    attached: HashMap<String, String>,
    refunded: HashMap<String, i64>,
    /// Idempotency key → (request fingerprint, status, body).
    keys: HashMap<String, (String, u16, Value)>,
    succeeded_charges: u64,
    refunds: u64,
    knobs: super::knobs::Knobs,
    /// (method, path, Idempotency-Key) of every request, in order.
    requests: Vec<(String, String, Option<String>)>,
    next_id: u64,
}

type Shared = Arc<Mutex<Book>>;

/// A running stand-in on `127.0.0.1`; stops when dropped.
pub struct StripeStandIn {
    base: String,
    book: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StripeStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(book: &Shared) -> MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StripeStandIn {
    /// Starts on a free port.
    ///
    /// # Panics
    /// When no port can be bound (a test fixture).
    pub async fn start() -> Self {
        let book = Shared::default();
        let app = Router::new()
            .route("/v1/payment_intents", post(create_intent))
            .route("/v1/payment_intents/search", get(search_intents))
            .route("/v1/payment_intents/{id}", get(retrieve_intent))
            .route(
                "/v1/payment_intents/{id}/capture",
                post(capture::capture_intent),
            )
            .route(
                "/v1/payment_intents/{id}/cancel",
                post(capture::cancel_intent),
            )
            .route("/v1/refunds", post(create_refund))
            .route("/v1/customers", get(list_customers).post(create_customer))
            .route("/v1/payment_methods/{pm}/attach", post(attach_method))
            .with_state(book.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Stripe stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}/"),
            book,
            task,
        }
    }

    /// `STRIPE_API_BASE` for this stand-in.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// PaymentIntents that took money (an idempotent replay does not count again).
    pub fn succeeded_charges(&self) -> u64 {
        lock(&self.book).succeeded_charges
    }

    /// Refunds made.
    pub fn refunds(&self) -> u64 {
        lock(&self.book).refunds
    }

    /// The PaymentIntent `id` as the stand-in holds it (for building its webhooks).
    pub fn intent(&self, id: &str) -> Option<Value> {
        lock(&self.book).intents.get(id).cloned()
    }

    /// Customers created.
    pub fn customers(&self) -> Vec<Value> {
        lock(&self.book).customers.values().cloned().collect()
    }

    /// The customer `pm` is attached to.
    pub fn attached_to(&self, pm: &str) -> Option<String> {
        lock(&self.book).attached.get(pm).cloned()
    }

    /// The last PaymentIntent created (ids grow with each one).
    pub fn last_intent(&self) -> Option<Value> {
        let b = lock(&self.book);
        b.intents
            .values()
            .max_by_key(|pi| pi["id"].as_str().map(str::to_string))
            .cloned()
    }

    /// `(method, path, Idempotency-Key)` of every request so far.
    pub fn requests(&self) -> Vec<(String, String, Option<String>)> {
        lock(&self.book).requests.clone()
    }

    /// The next `n` mutating requests get a 500 and change nothing.
    pub fn fail_before_acting(&self, n: u32) {
        lock(&self.book).knobs.fail_before = n;
    }

    /// The next `n` mutating requests act, then get a 500: the caller never learns the outcome.
    pub fn fail_after_acting(&self, n: u32) {
        lock(&self.book).knobs.fail_after = n;
    }

    /// The next `n` mutating requests to paths ending with `suffix` (`/capture`) act, then get
    /// a 500.
    pub fn fail_after_acting_on(&self, suffix: &str, n: u32) {
        lock(&self.book).knobs.fail_after_on = Some((suffix.to_string(), n));
    }

    /// The next `n` replays of a stored answer (a retry under a known key) get a 500.
    pub fn fail_replays(&self, n: u32) {
        lock(&self.book).knobs.fail_replays = n;
    }

    /// Every answer waits this long first.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.book).knobs.delay = delay;
    }

    /// Mutating requests act at once, then wait this long before answering.
    pub fn set_answer_delay(&self, delay: Duration) {
        lock(&self.book).knobs.answer_delay = delay;
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn error(
    status: StatusCode,
    type_: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> (u16, Value) {
    let mut e = json!({ "type": type_, "code": code, "message": message,
        "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")) });
    if let Some(p) = param {
        e["param"] = json!(p);
    }
    (status.as_u16(), json!({ "error": e }))
}

fn respond(status: u16, body: &Value, replayed: bool) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body.clone()),
    )
        .into_response();
    r.headers_mut()
        .insert("request-id", HeaderValue::from_static("req_standin"));
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

fn server_error() -> Response {
    let (s, body) = error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "api_error",
        "An unknown error occurred.",
        None,
    );
    respond(s, &body, false)
}

/// Authorization, the delay, the log, idempotent replays and injected failures around `act`.
async fn mutate(
    book: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    act: impl FnOnce(&mut Book, &HashMap<String, String>) -> (u16, Value),
) -> Response {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let delay = {
        let mut b = lock(book);
        b.requests.push((method.into(), path.into(), key.clone()));
        b.knobs.delay
    };
    tokio::time::sleep(delay).await;
    if !authorized(headers) {
        return unauthorized();
    }
    let params: HashMap<String, String> =
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .unwrap_or_default()
            .into_iter()
            .collect();
    // Stripe compares parameters, not their order in the form.
    let mut sorted: Vec<_> = params.iter().collect();
    sorted.sort();
    let fingerprint = format!("{path}?{sorted:?}");
    let (response, answer_delay) = {
        let mut b = lock(book);
        let answered = decide(&mut b, key, fingerprint, &params, act);
        if b.knobs.loses_answer_to(path) {
            (server_error(), Duration::ZERO)
        } else {
            answered
        }
    };
    tokio::time::sleep(answer_delay).await;
    response
}

/// The answer to a mutating request, and how long to wait before giving it.
fn decide(
    b: &mut Book,
    key: Option<String>,
    fingerprint: String,
    params: &HashMap<String, String>,
    act: impl FnOnce(&mut Book, &HashMap<String, String>) -> (u16, Value),
) -> (Response, Duration) {
    if b.knobs.fails_before() {
        return (server_error(), Duration::ZERO);
    }
    if let Some(k) = &key
        && let Some((first, status, answer)) = b.keys.get(k)
    {
        if *first != fingerprint {
            let (s, body) = error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "idempotency_key_in_use",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                None,
            );
            return (respond(s, &body, false), Duration::ZERO);
        }
        let replay = respond(*status, answer, true);
        if b.knobs.loses_replay() {
            return (server_error(), Duration::ZERO);
        }
        return (replay, Duration::ZERO);
    }
    let (status, answer) = act(b, params);
    if let Some(k) = key {
        b.keys.insert(k, (fingerprint, status, answer.clone()));
    }
    if b.knobs.loses_answer() {
        return (server_error(), Duration::ZERO);
    }
    (respond(status, &answer, false), b.knobs.answer_delay)
}

/// Stripe's answer to a missing or wrong secret key.
fn unauthorized() -> Response {
    let (s, body) = error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "api_key_invalid",
        "Invalid API Key provided.",
        None,
    );
    respond(s, &body, false)
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer sk_") || v.starts_with("Bearer rk_"))
}

/// `(code, decline_code, message)` of a declining test token; `None` for others.
fn decline_of(token: &str) -> Option<(&'static str, Option<&'static str>, &'static str)> {
    let kind = token
        .strip_prefix("pm_card_chargeDeclined")
        .or_else(|| token.strip_prefix("tok_chargeDeclined"))?;
    Some(match kind {
        "" => (
            "card_declined",
            Some("generic_decline"),
            "Your card was declined.",
        ),
        "InsufficientFunds" => (
            "card_declined",
            Some("insufficient_funds"),
            "Your card has insufficient funds.",
        ),
        "Fraudulent" => (
            "card_declined",
            Some("fraudulent"),
            "Your card was declined.",
        ),
        "ExpiredCard" => ("expired_card", None, "Your card has expired."),
        "IncorrectCvc" => (
            "incorrect_cvc",
            None,
            "Your card's security code is incorrect.",
        ),
        "ProcessingError" => (
            "processing_error",
            None,
            "An error occurred while processing your card. Try again in a little bit.",
        ),
        _ => return None,
    })
}

fn succeeds(token: &str) -> bool {
    matches!(
        token,
        "pm_card_visa"
            | "pm_card_visa_fr"
            | "pm_card_mastercard"
            | "tok_visa"
            | "tok_mastercard"
            | "pm_card_riskLevelElevated"
            | "tok_riskLevelElevated"
            | "pm_card_riskLevelHighest"
            | "tok_riskLevelHighest"
    )
}

fn next_id(b: &mut Book, prefix: &str) -> String {
    b.next_id += 1;
    format!("{prefix}_3StandIn{:016}", b.next_id)
}

/// A PaymentIntent with every field of Stripe's object.
fn intent(id: &str, p: &HashMap<String, String>, amount: i64, status: &str) -> Value {
    let metadata: serde_json::Map<String, Value> = p
        .iter()
        .filter_map(|(k, v)| {
            let inner = k.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((inner.to_string(), json!(v)))
        })
        .collect();
    let mut pi = json!({
        "id": id, "object": "payment_intent", "amount": amount,
        "amount_capturable": 0, "amount_details": { "tip": {} },
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "application": null, "application_fee_amount": null,
        "automatic_payment_methods": null, "canceled_at": null, "cancellation_reason": null,
        "capture_method": "automatic", "client_secret": format!("{id}_secret_standin"),
        "confirmation_method": "automatic", "created": now(),
        "currency": p.get("currency").cloned().unwrap_or_default(),
        "customer": p.get("customer"), "customer_account": null,
        "description": p.get("description"), "excluded_payment_method_types": null,
    });
    let rest = json!({
        "last_payment_error": null, "latest_charge": null, "livemode": false,
        "managed_payments": null, "metadata": metadata, "next_action": null, "on_behalf_of": null,
        "payment_method": p.get("payment_method"), "payment_method_configuration_details": null,
        "payment_method_options": {}, "payment_method_types": ["card"], "processing": null,
        "receipt_email": null, "review": null, "setup_future_usage": null, "shipping": null,
        "source": null, "statement_descriptor": null, "statement_descriptor_suffix": null,
        "status": status, "transfer_data": null, "transfer_group": null,
    });
    if let (Some(pi), Value::Object(rest)) = (pi.as_object_mut(), rest) {
        pi.extend(rest);
    }
    pi
}

async fn create_intent(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    mutate(&book, "POST", "/v1/payment_intents", &headers, &body, |b, p| {
        let Some(amount) = p.get("amount").and_then(|a| a.parse::<i64>().ok()).filter(|a| *a > 0) else {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid_integer", "Invalid positive integer", Some("amount"));
        };
        if p.get("currency").is_none_or(|c| c.len() != 3) {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_missing", "Missing required param: currency.", Some("currency"));
        }
        let token = p.get("payment_method").cloned().unwrap_or_default();
        if let Some(c) = p.get("customer") {
            if !b.customers.contains_key(c) {
                return error(StatusCode::BAD_REQUEST, "invalid_request_error", "resource_missing",
                    &format!("No such customer: '{c}'"), Some("customer"));
            }
            // A method attached to a customer is charged with that customer only.
            if b.attached.get(&token).is_some_and(|owner| owner != c) {
                return error(StatusCode::BAD_REQUEST, "invalid_request_error", "payment_method_invalid_parameter",
                    "The provided PaymentMethod belongs to another customer.", Some("payment_method"));
            }
        } else if b.attached.contains_key(&token) {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "payment_method_invalid_parameter",
                "The provided PaymentMethod is attached to a customer: pass the customer too.", Some("customer"));
        }
        let id = next_id(b, "pi");
        if succeeds(&token) {
            let manual = p.get("capture_method").is_some_and(|m| m == "manual");
            let status = if manual { "requires_capture" } else { "succeeded" };
            let mut pi = intent(&id, p, amount, status);
            let charge = next_id(b, "ch");
            let object = capture::charge_object(&charge, &pi, capture::risk_level(&token), !manual);
            b.charges.insert(charge.clone(), object);
            pi["latest_charge"] = json!(charge);
            if manual {
                pi["capture_method"] = json!("manual");
                pi["amount_capturable"] = json!(amount);
            } else {
                b.succeeded_charges += 1;
            }
            b.intents.insert(id, pi.clone());
            return (200, capture::expanded(b, p, pi));
        }
        if token == "pm_card_authenticationRequired" {
            let mut pi = intent(&id, p, amount, "requires_action");
            pi["next_action"] = json!({ "type": "use_stripe_sdk", "use_stripe_sdk": {} });
            b.intents.insert(id, pi.clone());
            return (200, pi);
        }
        let Some((code, decline, message)) = decline_of(&token) else {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "resource_missing",
                &format!("No such PaymentMethod: '{token}'"), Some("payment_method"));
        };
        let charge = next_id(b, "ch");
        let mut e = json!({ "type": "card_error", "code": code, "message": message, "charge": charge,
            "doc_url": format!("https://stripe.com/docs/error-codes/{}", code.replace('_', "-")) });
        if let Some(d) = decline {
            e["decline_code"] = json!(d);
        }
        let mut pi = intent(&id, p, amount, "requires_payment_method");
        pi["latest_charge"] = json!(charge);
        pi["last_payment_error"] = e.clone();
        b.intents.insert(id, pi.clone());
        e["payment_intent"] = pi;
        (402, json!({ "error": e }))
    })
    .await
}

async fn create_refund(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    mutate(&book, "POST", "/v1/refunds", &headers, &body, |b, p| {
        let by_charge = p.get("charge").and_then(|ch| {
            b.intents.iter().find(|(_, pi)| pi["latest_charge"] == json!(ch)).map(|(id, _)| id.clone())
        });
        let Some(pi_id) = p.get("payment_intent").cloned().or(by_charge) else {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_missing", "One of the following params should be provided for this request: payment_intent or charge.", None);
        };
        let Some(pi) = b.intents.get(&pi_id).filter(|pi| pi["status"] == "succeeded").cloned() else {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "resource_missing", &format!("No such payment_intent: '{pi_id}'"), Some("payment_intent"));
        };
        let received = pi["amount_received"].as_i64().unwrap_or(0);
        let done = b.refunded.get(&pi_id).copied().unwrap_or(0);
        let amount = p.get("amount").and_then(|a| a.parse::<i64>().ok()).unwrap_or(received - done);
        if amount <= 0 || done + amount > received {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "amount_too_large",
                &format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({})", received - done), Some("amount"));
        }
        b.refunded.insert(pi_id.clone(), done + amount);
        b.refunds += 1;
        let id = next_id(b, "re");
        (200, json!({
            "id": id, "object": "refund", "amount": amount, "balance_transaction": null,
            "charge": pi["latest_charge"], "created": now(), "currency": pi["currency"],
            "destination_details": { "card": { "type": "refund" }, "type": "card" },
            "metadata": {}, "payment_intent": pi_id, "reason": p.get("reason"),
            "receipt_number": null, "source_transfer_reversal": null, "status": "succeeded",
            "transfer_reversal": null, "customer": null, "customer_account": null,
            "payment_method": pi["payment_method"],
        }))
    })
    .await
}

async fn retrieve_intent(
    State(book): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    lock(&book).requests.push((
        Method::GET.to_string(),
        format!("/v1/payment_intents/{id}"),
        None,
    ));
    if !authorized(&headers) {
        return unauthorized();
    }
    match lock(&book).intents.get(&id) {
        Some(pi) => respond(200, pi, false),
        None => {
            let (s, b) = error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "resource_missing",
                &format!("No such payment_intent: '{id}'"),
                Some("intent"),
            );
            respond(s, &b, false)
        }
    }
}

async fn list_customers(State(book): State<Shared>, headers: HeaderMap) -> Response {
    lock(&book)
        .requests
        .push(("GET".into(), "/v1/customers".into(), None));
    if !authorized(&headers) {
        return unauthorized();
    }
    respond(
        200,
        &json!({ "object": "list", "data": [], "has_more": false, "url": "/v1/customers" }),
        false,
    )
}

async fn create_customer(State(book): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    mutate(&book, "POST", "/v1/customers", &headers, &body, |b, p| {
        let id = next_id(b, "cus");
        let metadata: serde_json::Map<String, Value> = p
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("metadata[")?.strip_suffix(']')?.to_string(),
                    json!(v),
                ))
            })
            .collect();
        let customer = json!({
            "id": id, "object": "customer",
            "address": null, "balance": 0, "created": now(), "currency": null,
            "default_source": null, "delinquent": false, "description": null, "discount": null,
            "email": p.get("email"), "invoice_prefix": "STANDIN", "invoice_settings": {
                "custom_fields": null, "default_payment_method": null, "footer": null,
                "rendering_options": null },
            "livemode": false, "metadata": metadata, "name": null, "next_invoice_sequence": 1,
            "phone": null, "preferred_locales": [], "shipping": null, "tax_exempt": "none",
            "test_clock": null,
        });
        b.customers.insert(id, customer.clone());
        (200, customer)
    })
    .await
}

async fn attach_method(
    State(book): State<Shared>,
    headers: HeaderMap,
    Path(pm): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_methods/{pm}/attach");
    mutate(&book, "POST", &path, &headers, &body, |b, p| {
        let Some(customer) = p.get("customer").filter(|c| b.customers.contains_key(*c)).cloned() else {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "resource_missing",
                "No such customer", Some("customer"));
        };
        if !pm.starts_with("pm_card_") {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "resource_missing",
                &format!("No such PaymentMethod: '{pm}'"), None);
        }
        if b.attached.get(&pm).is_some_and(|owner| *owner != customer) {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "payment_method_unexpected_state",
                "The payment method you provided has already been attached to a customer.", None);
        }
        b.attached.insert(pm.clone(), customer.clone());
        // Stripe's test cards are issued in the US, except the named international ones.
        let country = if pm.ends_with("_fr") { "FR" } else { "US" };
        (200, json!({
            "id": pm, "object": "payment_method", "allow_redisplay": "unspecified",
            "billing_details": { "address": { "city": null, "country": null, "line1": null,
                "line2": null, "postal_code": null, "state": null },
                "email": null, "name": null, "phone": null, "tax_id": null },
            "card": { "brand": "visa", "checks": { "address_line1_check": null,
                "address_postal_code_check": null, "cvc_check": "pass" }, "country": country,
                "display_brand": "visa", "exp_month": 12, "exp_year": 2034,
                "fingerprint": "StandInFp0000001", "funding": "credit", "generated_from": null,
                "last4": "4242", "networks": { "available": ["visa"], "preferred": null },
                "regulated_status": null, "three_d_secure_usage": { "supported": true }, "wallet": null },
            "created": now(), "customer": customer, "customer_account": null, "livemode": false,
            "metadata": {}, "type": "card",
        }))
    })
    .await
}

/// `GET /v1/payment_intents/search?query=metadata['billing_key']:'…'` (the one query we make).
async fn search_intents(
    State(book): State<Shared>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    lock(&book)
        .requests
        .push(("GET".into(), "/v1/payment_intents/search".into(), None));
    if !authorized(&headers) {
        return unauthorized();
    }
    let params: HashMap<String, String> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .collect();
    let wanted = params
        .get("query")
        .and_then(|q| q.strip_prefix("metadata['billing_key']:'"))
        .and_then(|q| q.strip_suffix('\''))
        .map(str::to_string);
    let Some(wanted) = wanted else {
        let (s, b) = error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "parameter_invalid",
            "Unsupported search query.",
            Some("query"),
        );
        return respond(s, &b, false);
    };
    let b = lock(&book);
    let data: Vec<Value> = b
        .intents
        .values()
        .filter(|pi| pi["metadata"]["billing_key"] == json!(wanted))
        .map(|pi| {
            if capture::wants(&params, "data.latest_charge") {
                capture::with_charge(&b, pi.clone())
            } else {
                pi.clone()
            }
        })
        .collect();
    drop(b);
    respond(
        200,
        &json!({ "object": "search_result", "data": data, "has_more": false,
        "next_page": null, "url": "/v1/payment_intents/search", "total_count": null }),
        false,
    )
}
