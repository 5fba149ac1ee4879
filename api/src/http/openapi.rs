//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use ledger::access::Scope;

use super::auth::Caller;
use super::error::ApiError;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Kanizsa Billing", description = "Event-sourced billing ledger: command API, operations."),
    paths(super::ops::health, super::ops::ready, super::ops::metrics, super::payment::process,
        super::audit::verify,
        super::events::list,
        super::events::get,
        super::customers::create,
        super::customers::update,
        super::customers::erase,
        super::customers::read::get,
        super::customers::read::export,
        super::customers::payment_methods::attach,
        super::customers::payment_methods::detach,
        super::customers::payment_methods::adjust_balance,
        super::test_clocks::create,
        super::test_clocks::advance,
        super::subscriptions::create,
        super::subscriptions::create_seed,
        super::subscriptions::update,
        super::subscriptions::cancel,
        super::subscriptions::pause,
        super::subscriptions::resume,
        super::subscriptions::usage,
        super::subscriptions::get,
        super::invoices::create,
        super::invoices::finalize,
        super::invoices::pay,
        super::invoices::void,
        super::invoices::mark_uncollectible,
        super::invoices::send,
        super::invoices::get,
        super::invoices::credit_note,
        super::plans::create,
        super::plans::archive,
        super::tax_rates::create,
        super::charges::create,
        super::refunds::create,
        super::stripe_test::check,
        super::reads::lists::customers_list,
        super::reads::lists::customer_invoices,
        super::reads::lists::customer_charges,
        super::reads::lists::subscriptions_list,
        super::reads::lists::invoices_list,
        super::reads::lists::charges_list,
        super::reads::lists::charge_get,
        super::reads::lists::plans_list,
        super::reads::lists::plan_get,
        super::reads::lists::tax_rates_list,
        super::reads::ledger_api::trial_balance,
        super::reads::analytics::revenue,
        super::reads::analytics::payments,
        super::reads::analytics::mrr,
        super::reads::analytics::churn,
        super::reads::analytics::forecast,
        super::reads::held::refunds_list,
        super::reads::held::refund_get,
        super::reads::gateway_events::list,
        super::reads::gateway_events::get,
        super::reviews::list,
        super::reviews::approve,
        super::reviews::reject,
        super::reads::held::credit_notes_list,
        super::reads::held::credit_note_get,
        super::webhooks::stripe,
        super::webhooks_paypal::paypal
    ),
    components(schemas(
        super::payment::PaymentProcess,
        super::reads::ledger_api::TrialBalance,
        super::reads::ledger_api::CurrencyBalance,
        super::reads::ledger_api::AccountLine,
        super::charge_json::ChargeObject,
        super::customers::CustomerFields,
        super::customers::object::CustomerObject,
        super::customers::object::PaymentMethodObject,
        super::customers::payment_methods::AttachPaymentMethod,
        super::customers::payment_methods::BalanceTransaction,
        super::test_clocks::CreateTestClock,
        super::test_clocks::AdvanceTestClock,
        super::test_clocks::TestClockObject,
        super::subscriptions::CreateSubscription,
        super::subscriptions::UpdateSubscription,
        super::subscriptions::CancelSubscription,
        super::subscriptions::RecordUsage,
        super::subscriptions::object::SubscriptionObject,
        super::subscriptions::object::SubscriptionPlan,
        super::invoices::CreateInvoice,
        super::invoices::CreateInvoiceItem,
        super::invoices::CreateCreditNote,
        super::invoices::object::InvoiceObject,
        super::invoices::object::LineObject,
        super::invoices::object::TaxAmount,
        super::invoices::object::CreditNoteObject,
        super::events::EventObject,
        super::events::EventList,
        super::plans::CreatePlan,
        super::plans::PlanObject,
        super::tax_rates::CreateTaxRate,
        super::tax_rates::TaxRateObject,
        super::charges::CreateCharge,
        super::refunds::CreateRefund,
        super::refunds::RefundObject
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /openapi.json` (a `read` key).
pub async fn document(caller: Caller) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(ApiDoc::openapi()))
}
