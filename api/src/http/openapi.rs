//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use ledger::access::Scope;

use super::auth::Caller;
use super::error::{ApiError, ErrorType};
use super::idempotency;
use serde::Serialize;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

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
        super::refunds::RefundObject,
        Error,
        ErrorObject,
        ErrorType,
        Gateway,
        CreditNoteReason
    )),
    modifiers(&BearerAuth, &Conventions)
)]
pub struct ApiDoc;

/// The body of every error (API.md, "Errors"); only documented here, `ApiError` writes it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Error {
    error: ErrorObject,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: ErrorType,
    /// Machine-readable, e.g. `parameter_invalid`, `card_declined`, `read_model_behind`.
    code: String,
    message: String,
    /// The request parameter at fault, if one is.
    param: Option<String>,
    /// A declined card's reason (`card_error` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    decline_code: Option<String>,
    /// The failed charge (`ch_…`) of a `card_error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    charge: Option<String>,
}

/// The gateways a payment method can be at (`commands::customer::GatewayKind`, as it reads).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Gateway {
    Stripe,
    Paypal,
    Sandbox,
}

/// Why a credit note is issued (`commands::invoice::CreditNoteReason`, as it reads).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CreditNoteReason {
    Duplicate,
    Fraudulent,
    OrderChange,
    ProductUnsatisfactory,
}

/// What API.md says of every operation, written into each: any status but the documented ones
/// answers the `Error` body, and every command (a `POST` or `DELETE` of the command API) takes an
/// `Idempotency-Key`.
struct Conventions;

/// Operations that are not commands: no `Idempotency-Key` (webhooks are deduplicated by their
/// event id; the Stripe check writes nothing).
const NOT_COMMANDS: [&str; 3] = [
    "/webhooks/stripe",
    "/webhooks/paypal",
    "/payment/stripe/test",
];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let command = !NOT_COMMANDS.contains(&path.as_str());
            let operations = [
                (&mut item.get, false),
                (&mut item.put, false),
                (&mut item.post, command),
                (&mut item.delete, command),
                (&mut item.patch, false),
            ];
            for (operation, command) in operations {
                if let Some(op) = operation.as_mut() {
                    conventions(op, command);
                }
            }
        }
    }
}

fn conventions(op: &mut Operation, command: bool) {
    op.responses
        .responses
        .entry("default".to_string())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(
                        "Error: `{\"error\": {\"type\", \"code\", \"message\", \"param\"}}` \
                         (400 invalid request, 401, 402 card error, 403, 404, 409, 413 body too \
                         large, 422 idempotency key reused, 5xx)",
                    )
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Error")))
                            .build(),
                    )
                    .build(),
            )
        });
    let parameters = op.parameters.get_or_insert_with(Vec::new);
    if command {
        parameters.push(RefOr::T(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1 to 255 printable ASCII characters: the same key and request replays the \
                     first response (`Idempotent-Replayed: true`); another request is 422, the \
                     same key still running 409",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(idempotency::KEY_MAX_BYTES))
                        .pattern(Some("^[!-~]+$")),
                ))
                .build(),
        ));
    }
    if parameters.is_empty() {
        op.parameters = None;
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use commands::customer::GatewayKind;
    use commands::invoice::CreditNoteReason as Reason;

    /// The values the document lists for `schema`.
    fn listed(schema: &str) -> Vec<String> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        doc["components"]["schemas"][schema]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// Every variant as the API reads it. The `match` makes a new variant a compile error here.
    fn names<T: serde::Serialize>(all: &[T]) -> Vec<String> {
        all.iter()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn documented_value_sets_are_the_domain_ones() {
        let gateways = [
            GatewayKind::Stripe,
            GatewayKind::Paypal,
            GatewayKind::Sandbox,
        ];
        for g in gateways {
            match g {
                GatewayKind::Stripe | GatewayKind::Paypal | GatewayKind::Sandbox => {}
            }
        }
        assert_eq!(listed("Gateway"), names(&gateways));
        let reasons = [
            Reason::Duplicate,
            Reason::Fraudulent,
            Reason::OrderChange,
            Reason::ProductUnsatisfactory,
        ];
        for r in reasons {
            match r {
                Reason::Duplicate
                | Reason::Fraudulent
                | Reason::OrderChange
                | Reason::ProductUnsatisfactory => {}
            }
        }
        assert_eq!(listed("CreditNoteReason"), names(&reasons));
    }
}
