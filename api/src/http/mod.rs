//! The HTTP server: routes, middleware, and the error mapping.

pub mod audit;
pub mod auth;
pub mod body;
pub mod charge_json;
pub mod charges;
pub mod command;
pub mod customers;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod invoices;
pub mod key_cache;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod payment;
pub mod plans;
pub mod reads;
pub mod refunds;
pub mod respond;
pub mod reviews;
pub mod stripe_test;
pub mod subscriptions;
pub mod tax_rates;
pub mod test_clocks;
pub mod webhooks;
pub mod webhooks_paypal;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use self::error::ApiError;
use crate::state::AppState;

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .route("/payment/process", post(payment::process))
        .route("/payment/stripe/test", post(stripe_test::check))
        .route(
            "/webhooks/stripe",
            post(webhooks::stripe).layer(DefaultBodyLimit::max(webhooks::BODY_MAX_BYTES)),
        )
        .route(
            "/webhooks/paypal",
            post(webhooks_paypal::paypal).layer(DefaultBodyLimit::max(webhooks::BODY_MAX_BYTES)),
        )
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}", get(events::get))
        .route(
            "/v1/customers",
            post(customers::create).get(reads::lists::customers_list),
        )
        .route(
            "/v1/customers/{id}/invoices",
            get(reads::lists::customer_invoices),
        )
        .route(
            "/v1/customers/{id}/charges",
            get(reads::lists::customer_charges),
        )
        .route(
            "/v1/customers/{id}",
            post(customers::update).get(customers::read::get),
        )
        .route("/v1/customers/{id}/export", get(customers::read::export))
        .route(
            "/v1/customers/{id}/payment_methods",
            post(customers::payment_methods::attach),
        )
        .route(
            "/v1/customers/{id}/payment_methods/{pm}",
            delete(customers::payment_methods::detach),
        )
        .route("/v1/customers/{id}/personal_data", delete(customers::erase))
        .route(
            "/v1/customers/{id}/balance_transactions",
            post(customers::payment_methods::adjust_balance),
        )
        .route("/v1/test_clocks", post(test_clocks::create))
        .route("/v1/test_clocks/{id}/advance", post(test_clocks::advance))
        .route(
            "/v1/subscriptions",
            post(subscriptions::create).get(reads::lists::subscriptions_list),
        )
        .route("/subscriptions/create", post(subscriptions::create_seed))
        .route(
            "/v1/subscriptions/{id}",
            post(subscriptions::update).get(subscriptions::get),
        )
        .route("/v1/subscriptions/{id}/cancel", post(subscriptions::cancel))
        .route("/v1/subscriptions/{id}/pause", post(subscriptions::pause))
        .route("/v1/subscriptions/{id}/resume", post(subscriptions::resume))
        .route("/v1/subscriptions/{id}/usage", post(subscriptions::usage))
        .route(
            "/v1/invoices",
            post(invoices::create).get(reads::lists::invoices_list),
        )
        .route("/v1/invoices/{id}", get(invoices::get))
        .route("/v1/invoices/{id}/finalize", post(invoices::finalize))
        .route("/v1/invoices/{id}/pay", post(invoices::pay))
        .route("/v1/invoices/{id}/void", post(invoices::void))
        .route(
            "/v1/invoices/{id}/mark_uncollectible",
            post(invoices::mark_uncollectible),
        )
        .route("/v1/invoices/{id}/send", post(invoices::send))
        .route(
            "/v1/credit_notes",
            post(invoices::credit_note).get(reads::held::credit_notes_list),
        )
        .route("/v1/credit_notes/{id}", get(reads::held::credit_note_get))
        .route(
            "/v1/plans",
            post(plans::create).get(reads::lists::plans_list),
        )
        .route("/v1/plans/{id}", get(reads::lists::plan_get))
        .route("/v1/plans/{id}/archive", post(plans::archive))
        .route(
            "/v1/tax_rates",
            post(tax_rates::create).get(reads::lists::tax_rates_list),
        )
        .route(
            "/v1/charges",
            post(charges::create).get(reads::lists::charges_list),
        )
        .route("/v1/charges/{id}", get(reads::lists::charge_get))
        .route(
            "/v1/ledger/trial_balance",
            get(reads::ledger_api::trial_balance),
        )
        .route("/v1/analytics/revenue", get(reads::analytics::revenue))
        .route("/v1/analytics/payments", get(reads::analytics::payments))
        .route("/v1/analytics/mrr", get(reads::analytics::mrr))
        .route("/v1/analytics/churn", get(reads::analytics::churn))
        .route("/v1/analytics/forecast", get(reads::analytics::forecast))
        .route(
            "/v1/refunds",
            post(refunds::create).get(reads::held::refunds_list),
        )
        .route("/v1/refunds/{id}", get(reads::held::refund_get))
        .route("/v1/gateway_events", get(reads::gateway_events::list))
        .route("/v1/gateway_events/{id}", get(reads::gateway_events::get))
        .route("/v1/reviews", get(reviews::list))
        .route("/v1/reviews/{id}/approve", post(reviews::approve))
        .route("/v1/reviews/{id}/reject", post(reviews::reject))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(body::BODY_MAX_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::internal("request handler panicked", &"panic").into_response()
}
