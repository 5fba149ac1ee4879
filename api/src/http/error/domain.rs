//! Domain refusals and command failures as HTTP errors.

use axum::http::StatusCode;
use commands::CommandError;
use commands::charge::ChargeError;
use commands::charge::refund::RefundError;
use commands::customer::CustomerError;
use commands::invoice::InvoiceError;
use commands::plan::PlanError;
use commands::subscription::SubscriptionError;
use commands::tax_rate::TaxRateError;
use commands::test_clock::TestClockError;
use ledger::vault::VaultError;

use super::{ApiError, ErrorType};

fn exists(msg: String) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorType::Conflict,
        "resource_exists",
        msg,
    )
}

impl From<ChargeError> for ApiError {
    fn from(e: ChargeError) -> Self {
        let msg = e.to_string();
        match e {
            ChargeError::AmountNotPositive | ChargeError::AmountTooLarge => {
                ApiError::invalid("amount_invalid", Some("amount"), msg)
            }
            ChargeError::InvalidPaymentMethod => {
                ApiError::invalid("payment_method_invalid", Some("payment_method"), msg)
            }
            ChargeError::DescriptionTooLong => {
                ApiError::invalid("parameter_invalid", Some("description"), msg)
            }
            ChargeError::NotRequested => ApiError::not_found(msg),
            ChargeError::NotInReview(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "review_closed",
                msg,
            ),
            ChargeError::GatewayNotConfigured(_) => {
                ApiError::invalid("gateway_not_configured", Some("payment_method"), msg)
            }
            ChargeError::AlreadyRequested(_) | ChargeError::OutcomeRecorded(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "charge_exists",
                msg,
            ),
        }
    }
}

impl From<PlanError> for ApiError {
    fn from(e: PlanError) -> Self {
        let msg = e.to_string();
        match e {
            PlanError::NameInvalid => ApiError::invalid("parameter_invalid", Some("name"), msg),
            PlanError::AmountInvalid => ApiError::invalid("amount_invalid", Some("amount"), msg),
            PlanError::PricesInvalid => ApiError::invalid("parameter_invalid", Some("prices"), msg),
            PlanError::TiersInvalid(_) => {
                ApiError::invalid("parameter_invalid", Some("tiers"), msg)
            }
            PlanError::TrialTooLong => {
                ApiError::invalid("parameter_invalid", Some("trial_days"), msg)
            }
            PlanError::NotFound => ApiError::not_found(msg),
            PlanError::AlreadyExists(_) => exists(msg),
        }
    }
}

impl From<TaxRateError> for ApiError {
    fn from(e: TaxRateError) -> Self {
        let msg = e.to_string();
        match e {
            TaxRateError::DisplayNameInvalid => {
                ApiError::invalid("parameter_invalid", Some("display_name"), msg)
            }
            TaxRateError::CountryInvalid => {
                ApiError::invalid("parameter_invalid", Some("country"), msg)
            }
            TaxRateError::StateInvalid => {
                ApiError::invalid("parameter_invalid", Some("state"), msg)
            }
            TaxRateError::AlreadyExists(_) => exists(msg),
        }
    }
}

impl From<RefundError> for ApiError {
    fn from(e: RefundError) -> Self {
        let msg = e.to_string();
        match e {
            RefundError::ChargeNotRefundable => {
                ApiError::invalid("charge_not_refundable", Some("charge_id"), msg)
            }
            RefundError::AlreadyRefunded(_) => {
                ApiError::invalid("charge_already_refunded", Some("charge_id"), msg)
            }
            RefundError::AmountNotPositive => {
                ApiError::invalid("amount_invalid", Some("amount"), msg)
            }
            RefundError::AmountTooLarge { .. } => {
                ApiError::invalid("amount_too_large", Some("amount"), msg)
            }
            RefundError::ReasonInvalid => {
                ApiError::invalid("parameter_invalid", Some("reason"), msg)
            }
            RefundError::NotFound => ApiError::not_found(msg),
            RefundError::AlreadyRequested(_) | RefundError::OutcomeRecorded(_) => exists(msg),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Charge(c) => c.into(),
            CommandError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorType::Conflict,
                "concurrent_modification",
                "the resource was changed by another request; retry",
            ),
            CommandError::IdempotencyMismatch => ApiError::idempotency_mismatch(),
            CommandError::IdempotencyKeyTaken => ApiError::idempotency_in_flight(),
            CommandError::Plan(p) => p.into(),
            CommandError::Refund(r) => r.into(),
            CommandError::TaxRate(t) => t.into(),
            CommandError::Customer(c) => c.into(),
            CommandError::Vault(v) => v.into(),
            CommandError::Invoice(e) => e.into(),
            CommandError::Subscription(e) => e.into(),
            CommandError::TestClock(e) => e.into(),
            CommandError::Precondition(m) => ApiError::invalid("precondition_failed", None, m),
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<CustomerError> for ApiError {
    fn from(e: CustomerError) -> Self {
        let msg = e.to_string();
        match e {
            CustomerError::NotFound => ApiError::not_found(msg),
            CustomerError::AlreadyExists(_) => exists(msg),
            CustomerError::TaxLocationInvalid => {
                ApiError::invalid("parameter_invalid", Some("address"), msg)
            }
            CustomerError::TokenInvalid | CustomerError::CardNumberRefused => {
                ApiError::invalid("payment_method_invalid", Some("token"), msg)
            }
            CustomerError::TooManyPaymentMethods => {
                ApiError::invalid("payment_method_limit", Some("token"), msg)
            }
            CustomerError::PaymentMethodNotFound => ApiError::not_found(msg),
            CustomerError::CountryInvalid => {
                ApiError::invalid("country_invalid", Some("country"), msg)
            }
            CustomerError::CurrencyLocked { .. } => {
                ApiError::invalid("currency_locked", Some("currency"), msg)
            }
            CustomerError::ReasonInvalid => {
                ApiError::invalid("parameter_invalid", Some("reason"), msg)
            }
            CustomerError::ZeroAdjustment
            | CustomerError::AdjustmentTooLarge
            | CustomerError::Money(_) => ApiError::invalid("amount_invalid", Some("amount"), msg),
            CustomerError::Erased => ApiError::invalid("customer_erased", None, msg),
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Shredded(_) => ApiError::invalid(
                "customer_erased",
                None,
                "the customer's personal data was erased",
            ),
            VaultError::Store(s) => s.into(),
            VaultError::Unauthentic(_) | VaultError::Cipher(_) => {
                ApiError::internal("personal data vault", &e)
            }
        }
    }
}

/// A refusal because of the resource's state (Stripe answers these 400 too).
fn state(code: &'static str, msg: String) -> ApiError {
    ApiError::invalid(code, None, msg)
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        use SubscriptionError as E;
        let msg = e.to_string();
        match e {
            E::NotFound => ApiError::not_found(msg),
            E::AlreadyExists(_) => exists(msg),
            E::QuantityInvalid => ApiError::invalid("parameter_invalid", Some("quantity"), msg),
            E::TrialInvalid => ApiError::invalid("parameter_invalid", Some("trial_days"), msg),
            E::AnchorInvalid => {
                ApiError::invalid("parameter_invalid", Some("billing_cycle_anchor"), msg)
            }
            E::UsageInvalid | E::UsageOutsidePeriod { .. } => {
                ApiError::invalid("parameter_invalid", Some("quantity"), msg)
            }
            E::IntervalMismatch { .. } | E::CurrencyMismatch { .. } | E::UsageTypeMismatch => {
                ApiError::invalid("plan_incompatible", Some("plan_id"), msg)
            }
            E::PriceInvalid | E::Overflow(_) | E::Proration(_) => {
                ApiError::invalid("amount_invalid", None, msg)
            }
            E::NotMetered => state("subscription_not_metered", msg),
            E::Canceled => state("subscription_canceled", msg),
            E::StatusInvalid { .. }
            | E::PeriodEnded { .. }
            | E::NotDue { .. }
            | E::PeriodOutOfRange => state("subscription_state_invalid", msg),
        }
    }
}

impl From<InvoiceError> for ApiError {
    fn from(e: InvoiceError) -> Self {
        use InvoiceError as E;
        let msg = e.to_string();
        match e {
            E::NotFound => ApiError::not_found(msg),
            E::AlreadyExists(_) => exists(msg),
            E::LineCount(_) | E::InvalidLine { .. } | E::CurrencyMismatch { .. } => {
                ApiError::invalid("parameter_invalid", Some("items"), msg)
            }
            E::TaxRatesInvalid(_) => ApiError::invalid("parameter_invalid", Some("tax_rates"), msg),
            E::Overflow | E::CreditNoteAmountInvalid | E::CreditNoteTooLarge { .. } => {
                ApiError::invalid("amount_invalid", Some("amount"), msg)
            }
            E::InvalidPeriod
            | E::SubscriptionRequired
            | E::CreditAppliedInvalid
            | E::NumberInvalid
            | E::DueDateInPast
            | E::AttemptInvalid
            | E::FailureCodeInvalid
            | E::PaymentAmountMismatch { .. } => ApiError::invalid("parameter_invalid", None, msg),
            E::NotDraft(_) | E::NotFinalized | E::NotOpen(_) | E::AlreadyPaid | E::Voided => {
                state("invoice_state_invalid", msg)
            }
        }
    }
}

impl From<TestClockError> for ApiError {
    fn from(e: TestClockError) -> Self {
        let msg = e.to_string();
        match e {
            TestClockError::NotFound => ApiError::not_found(msg),
            TestClockError::AlreadyExists(_) => exists(msg),
            TestClockError::AdvanceInvalid { .. } => {
                ApiError::invalid("parameter_invalid", Some("frozen_time"), msg)
            }
            TestClockError::NameInvalid => {
                ApiError::invalid("parameter_invalid", Some("name"), msg)
            }
            TestClockError::TooManySubscriptions => state("test_clock_full", msg),
        }
    }
}

impl From<projections::store::ReadStoreError> for ApiError {
    fn from(e: projections::store::ReadStoreError) -> Self {
        match e {
            projections::store::ReadStoreError::Db(_) => {
                ApiError::unavailable("read models unavailable", &e)
            }
            projections::store::ReadStoreError::Corrupt(_) => {
                ApiError::internal("read-model document", &e)
            }
        }
    }
}
