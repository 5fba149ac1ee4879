//! The customer object (Stripe's shape), rendered from the aggregate and its opened personal data.

use std::collections::BTreeMap;

use commands::charge::Rendered;
use commands::customer::personal::Address;
use commands::customer::{Customer, PersonalData};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodObject {
    /// `pm_…`
    pub id: String,
    /// Always `payment_method`.
    pub object: &'static str,
    /// `stripe`, `paypal` or `sandbox`.
    pub gateway: &'static str,
    /// The gateway's token.
    pub token: String,
    /// ISO 3166-1 alpha-2 of the issuer, when known.
    pub country: Option<String>,
    /// RFC 3339.
    pub created: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerObject {
    /// `cus_…`
    pub id: String,
    /// Always `customer`.
    pub object: &'static str,
    /// `null` once erased.
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub address: Option<Address>,
    pub metadata: BTreeMap<String, String>,
    pub currency: Option<String>,
    /// Minor units; negative is credit applied to the next invoices, positive a debt the next
    /// invoice collects whole.
    pub balance: i64,
    /// `none` or `exempt`.
    pub tax_exempt: &'static str,
    pub test_clock: Option<String>,
    pub default_payment_method: Option<String>,
    pub payment_methods: Vec<PaymentMethodObject>,
    /// Whether the personal data was erased (GDPR).
    pub personal_data_erased: bool,
    /// RFC 3339.
    pub created: String,
    pub livemode: bool,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The customer as JSON; `personal` is what its sealed data opened to (`None` once erased).
pub fn render(c: &Customer, personal: Option<&PersonalData>) -> Rendered {
    let p = personal.cloned().unwrap_or_default();
    let object = CustomerObject {
        id: c.id.to_string(),
        object: "customer",
        name: p.name,
        email: p.email,
        phone: p.phone,
        address: p.address,
        metadata: p.metadata,
        currency: c.currency.map(|x| x.code().to_string()),
        balance: c.balance,
        tax_exempt: if c.tax_exempt { "exempt" } else { "none" },
        test_clock: c.test_clock.map(|t| t.to_string()),
        default_payment_method: c.default_payment_method.map(|p| p.to_string()),
        payment_methods: c
            .payment_methods
            .iter()
            .map(|m| PaymentMethodObject {
                id: m.id.to_string(),
                object: "payment_method",
                gateway: m.gateway.as_str(),
                token: m.token.clone(),
                country: m.country.clone(),
                created: rfc3339(m.attached),
            })
            .collect(),
        personal_data_erased: c.erased(),
        created: rfc3339(c.created),
        livemode: false,
    };
    Rendered {
        status: 200,
        body: serde_json::to_string(&object).unwrap_or_default(),
    }
}
