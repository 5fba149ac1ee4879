//! What happens to a customer, as recorded in its stream.
//!
//! Personal data (name, email, phone, street address, metadata) appears only as `personal`: text
//! sealed with the customer's data key by the [`crate::customer::CustomerService`]. The tax
//! location (country, state) stays in clear, because tax and the books need it after an erasure.

use ledger::ids::{CustomerId, PaymentMethodId, TestClockId};
use ledger::money::Currency;
use serde::{Deserialize, Serialize};

use crate::stored::{DomainEvent, from_json, to_json};

/// Where the customer is taxed: ISO 3166-1 alpha-2 country (upper case) and optional state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxLocation {
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// The gateway that issued a payment-method token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayKind {
    Stripe,
    Paypal,
    Sandbox,
}

impl GatewayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayKind::Stripe => "stripe",
            GatewayKind::Paypal => "paypal",
            GatewayKind::Sandbox => "sandbox",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerCreated {
    pub customer_id: CustomerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    pub tax_exempt: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_location: Option<TaxLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_clock: Option<TestClockId>,
    /// Sealed personal data.
    pub personal: String,
}

/// A partial update: only the fields present changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerUpdated {
    pub customer_id: CustomerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_exempt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_location: Option<TaxLocation>,
    /// The whole personal record, sealed again, when any personal field changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodAttached {
    pub customer_id: CustomerId,
    pub payment_method_id: PaymentMethodId,
    pub gateway: GatewayKind,
    /// The gateway's token (`tok_…`, `pm_…`, a PayPal vault id): never a card number.
    pub token: String,
    /// Where the method was issued (ISO 3166-1 alpha-2), as the gateway tells: fraud screening
    /// compares it with the billing country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// The gateway's customer the method is attached to (Stripe `cus_…`), when the gateway
    /// needs one to charge it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_customer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodDetached {
    pub customer_id: CustomerId,
    pub payment_method_id: PaymentMethodId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultPaymentMethodSet {
    pub customer_id: CustomerId,
    /// `None`: no default any more.
    pub payment_method_id: Option<PaymentMethodId>,
}

/// Stripe's customer balance: negative is credit the customer has, positive is owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceAdjusted {
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub amount: i64,
    pub balance_after: i64,
    pub reason: String,
    /// What caused it, when a command did (an invoice): applied once per source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalDataErased {
    pub customer_id: CustomerId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerEvent {
    Created(CustomerCreated),
    Updated(CustomerUpdated),
    PaymentMethodAttached(PaymentMethodAttached),
    PaymentMethodDetached(PaymentMethodDetached),
    DefaultPaymentMethodSet(DefaultPaymentMethodSet),
    BalanceAdjusted(BalanceAdjusted),
    PersonalDataErased(PersonalDataErased),
}

impl DomainEvent for CustomerEvent {
    fn event_type(&self) -> &'static str {
        match self {
            CustomerEvent::Created(_) => "CustomerCreated",
            CustomerEvent::Updated(_) => "CustomerUpdated",
            CustomerEvent::PaymentMethodAttached(_) => "PaymentMethodAttached",
            CustomerEvent::PaymentMethodDetached(_) => "PaymentMethodDetached",
            CustomerEvent::DefaultPaymentMethodSet(_) => "DefaultPaymentMethodSet",
            CustomerEvent::BalanceAdjusted(_) => "CustomerBalanceAdjusted",
            CustomerEvent::PersonalDataErased(_) => "CustomerPersonalDataErased",
        }
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            CustomerEvent::Created(e) => to_json(e),
            CustomerEvent::Updated(e) => to_json(e),
            CustomerEvent::PaymentMethodAttached(e) => to_json(e),
            CustomerEvent::PaymentMethodDetached(e) => to_json(e),
            CustomerEvent::DefaultPaymentMethodSet(e) => to_json(e),
            CustomerEvent::BalanceAdjusted(e) => to_json(e),
            CustomerEvent::PersonalDataErased(e) => to_json(e),
        }
    }

    fn from_stored(event_type: &str, payload: &serde_json::Value) -> Option<Self> {
        match event_type {
            "CustomerCreated" => from_json(payload).map(CustomerEvent::Created),
            "CustomerUpdated" => from_json(payload).map(CustomerEvent::Updated),
            "PaymentMethodAttached" => from_json(payload).map(CustomerEvent::PaymentMethodAttached),
            "PaymentMethodDetached" => from_json(payload).map(CustomerEvent::PaymentMethodDetached),
            "DefaultPaymentMethodSet" => {
                from_json(payload).map(CustomerEvent::DefaultPaymentMethodSet)
            }
            "CustomerBalanceAdjusted" => from_json(payload).map(CustomerEvent::BalanceAdjusted),
            "CustomerPersonalDataErased" => {
                from_json(payload).map(CustomerEvent::PersonalDataErased)
            }
            _ => None,
        }
    }
}
