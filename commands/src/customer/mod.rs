//! A customer: who is billed, in which currency, where taxed, with which payment methods.
//!
//! The aggregate is pure and never sees personal data in clear: it carries the sealed text the
//! [`CustomerService`] made with the customer's data key. Payment methods are gateway tokens;
//! anything that looks like a card number is refused. The balance is Stripe's customer balance
//! (negative = credit to apply to the next invoices).

mod events;
pub mod personal;
mod service;

use chrono::{DateTime, Utc};
use ledger::ids::{CustomerId, PaymentMethodId, TestClockId};
use ledger::money::{Currency, Money, MoneyError};
use serde::{Deserialize, Serialize};

pub use self::events::*;
pub use self::personal::PersonalData;
pub use self::service::{CustomerService, CustomerView};
use crate::aggregate::Aggregate;

/// Most payment methods attached at once.
pub const PAYMENT_METHODS_MAX: usize = 50;
/// Longest gateway token, in bytes.
pub const TOKEN_MAX_LEN: usize = 255;
/// Largest manual balance adjustment, either way, in minor units (Stripe's limit for amounts).
pub const MANUAL_ADJUSTMENT_MAX: i64 = 99_999_999;
/// Longest balance-adjustment reason, in characters.
pub const REASON_MAX_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub id: PaymentMethodId,
    pub gateway: GatewayKind,
    pub token: String,
    /// ISO 3166-1 alpha-2 of the issuer, when known.
    #[serde(default)]
    pub country: Option<String>,
    /// The gateway's customer it is attached to (Stripe `cus_…`), when linked.
    #[serde(default)]
    pub gateway_customer: Option<String>,
    pub attached: DateTime<Utc>,
}

/// The folded state of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    pub id: CustomerId,
    pub currency: Option<Currency>,
    pub tax_exempt: bool,
    pub tax_location: Option<TaxLocation>,
    pub test_clock: Option<TestClockId>,
    /// Sealed personal data; `None` once erased.
    pub personal: Option<String>,
    pub payment_methods: Vec<PaymentMethod>,
    pub default_payment_method: Option<PaymentMethodId>,
    /// Minor units of `currency` (0 while it has none).
    pub balance: i64,
    /// Balance adjustments by source, with their amounts (see `CustomerCommand::AdjustBalance`).
    pub adjustment_sources: std::collections::BTreeMap<String, i64>,
    pub created: DateTime<Utc>,
}

impl Customer {
    pub fn payment_method(&self, id: PaymentMethodId) -> Option<&PaymentMethod> {
        self.payment_methods.iter().find(|p| p.id == id)
    }

    /// The gateway's customer made for this one at `gateway`, if a method was linked there.
    pub fn gateway_customer(&self, gateway: GatewayKind) -> Option<&str> {
        self.payment_methods
            .iter()
            .filter(|m| m.gateway == gateway)
            .find_map(|m| m.gateway_customer.as_deref())
    }

    /// The default payment method, if it has one.
    pub fn default_method(&self) -> Option<&PaymentMethod> {
        self.default_payment_method
            .and_then(|id| self.payment_method(id))
    }

    pub fn erased(&self) -> bool {
        self.personal.is_none()
    }
}

/// The id of the method with `token` at `gateway` for `customer`: attaching it again is a no-op.
pub fn payment_method_id(
    customer: CustomerId,
    gateway: GatewayKind,
    token: &str,
) -> PaymentMethodId {
    PaymentMethodId::derived(&format!("{customer}:{}:{token}", gateway.as_str()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    pub customer_id: CustomerId,
    pub currency: Option<Currency>,
    pub tax_exempt: bool,
    pub tax_location: Option<TaxLocation>,
    pub test_clock: Option<TestClockId>,
    pub personal: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerChanges {
    pub currency: Option<Currency>,
    pub tax_exempt: Option<bool>,
    pub tax_location: Option<TaxLocation>,
    pub personal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerCommand {
    Create(NewCustomer),
    Update(CustomerChanges),
    AttachPaymentMethod {
        gateway: GatewayKind,
        token: String,
        set_default: bool,
        /// ISO 3166-1 alpha-2 of the issuer, when the gateway told.
        country: Option<String>,
        /// The gateway's customer it was attached to, when linked there.
        gateway_customer: Option<String>,
    },
    DetachPaymentMethod(PaymentMethodId),
    SetDefaultPaymentMethod(PaymentMethodId),
    AdjustBalance {
        amount: Money,
        reason: String,
        /// What caused it (e.g. an invoice applying credit): an adjustment from a source that
        /// was applied already changes nothing, so the caller may retry.
        source: Option<String>,
    },
    /// Applies the customer's balance to `source` (an invoice), once per source: its credit (a
    /// negative balance) up to `up_to`, as a positive adjustment; or all it owes (a positive
    /// balance), as a negative one (the invoice collects it).
    ApplyCredit {
        source: String,
        up_to: Money,
    },
    ErasePersonalData,
}

/// Why a customer command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomerError {
    #[error("no such customer")]
    NotFound,
    #[error("customer {0} exists already")]
    AlreadyExists(CustomerId),
    #[error(
        "country must be an ISO 3166-1 alpha-2 code, e.g. `US`; state at most 10 letters or digits"
    )]
    TaxLocationInvalid,
    #[error("token must be 1 to {TOKEN_MAX_LEN} printable ASCII characters")]
    TokenInvalid,
    #[error("card numbers are never accepted: tokenize the card at the gateway and send its token")]
    CardNumberRefused,
    #[error("country must be an ISO 3166-1 alpha-2 code (two letters)")]
    CountryInvalid,
    #[error("at most {PAYMENT_METHODS_MAX} payment methods per customer")]
    TooManyPaymentMethods,
    #[error("no such payment method on this customer")]
    PaymentMethodNotFound,
    #[error("the customer's currency is {have}; once set it cannot become {wanted}")]
    CurrencyLocked { have: Currency, wanted: Currency },
    #[error("reason must be 1 to {REASON_MAX_CHARS} characters")]
    ReasonInvalid,
    #[error("the adjustment must be non-zero")]
    ZeroAdjustment,
    #[error("a manual adjustment is at most {MANUAL_ADJUSTMENT_MAX} minor units either way")]
    AdjustmentTooLarge,
    #[error("the customer's personal data was erased; it cannot be changed")]
    Erased,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl Aggregate for Customer {
    type Event = CustomerEvent;
    type Command = CustomerCommand;
    type Error = CustomerError;
    const CATEGORY: &'static str = "customer";

    fn decide(
        state: Option<&Customer>,
        command: CustomerCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<CustomerEvent>, CustomerError> {
        let customer = match (state, command) {
            (Some(c), CustomerCommand::Create(_)) => {
                return Err(CustomerError::AlreadyExists(c.id));
            }
            (None, CustomerCommand::Create(new)) => return create(new),
            (None, _) => return Err(CustomerError::NotFound),
            (Some(c), command) => (c, command),
        };
        match customer {
            (c, CustomerCommand::Update(changes)) => update(c, changes),
            (
                c,
                CustomerCommand::AttachPaymentMethod {
                    gateway,
                    token,
                    set_default,
                    country,
                    gateway_customer,
                },
            ) => attach(c, gateway, token, set_default, country, gateway_customer),
            (c, CustomerCommand::DetachPaymentMethod(pm)) => detach(c, pm),
            (c, CustomerCommand::SetDefaultPaymentMethod(pm)) => {
                if c.payment_method(pm).is_none() {
                    return Err(CustomerError::PaymentMethodNotFound);
                }
                Ok(default_event(c, Some(pm)).into_iter().collect())
            }
            (
                c,
                CustomerCommand::AdjustBalance {
                    amount,
                    reason,
                    source,
                },
            ) => adjust(c, amount, reason, source),
            (c, CustomerCommand::ApplyCredit { source, up_to }) => apply_credit(c, source, up_to),
            (c, CustomerCommand::ErasePersonalData) if c.erased() => Ok(vec![]),
            (c, CustomerCommand::ErasePersonalData) => Ok(vec![CustomerEvent::PersonalDataErased(
                PersonalDataErased { customer_id: c.id },
            )]),
            (_, CustomerCommand::Create(_)) => Err(CustomerError::NotFound),
        }
    }

    fn evolve(
        state: Option<Customer>,
        event: &CustomerEvent,
        at: DateTime<Utc>,
    ) -> Option<Customer> {
        if let CustomerEvent::Created(e) = event {
            return Some(Customer {
                id: e.customer_id,
                currency: e.currency,
                tax_exempt: e.tax_exempt,
                tax_location: e.tax_location.clone(),
                test_clock: e.test_clock,
                personal: Some(e.personal.clone()),
                payment_methods: vec![],
                default_payment_method: None,
                balance: 0,
                adjustment_sources: Default::default(),
                created: at,
            });
        }
        let mut c = state?;
        match event {
            CustomerEvent::Created(_) => {}
            CustomerEvent::Updated(e) => {
                c.currency = e.currency.or(c.currency);
                c.tax_exempt = e.tax_exempt.unwrap_or(c.tax_exempt);
                if let Some(loc) = &e.tax_location {
                    c.tax_location = Some(loc.clone());
                }
                if let Some(p) = &e.personal {
                    c.personal = Some(p.clone());
                }
            }
            CustomerEvent::PaymentMethodAttached(e) => c.payment_methods.push(PaymentMethod {
                id: e.payment_method_id,
                gateway: e.gateway,
                token: e.token.clone(),
                country: e.country.clone(),
                gateway_customer: e.gateway_customer.clone(),
                attached: at,
            }),
            CustomerEvent::PaymentMethodDetached(e) => {
                c.payment_methods.retain(|p| p.id != e.payment_method_id);
            }
            CustomerEvent::DefaultPaymentMethodSet(e) => {
                c.default_payment_method = e.payment_method_id;
            }
            CustomerEvent::BalanceAdjusted(e) => {
                c.currency = Some(e.currency);
                c.balance = e.balance_after;
                if let Some(source) = &e.source {
                    c.adjustment_sources.insert(source.clone(), e.amount);
                }
            }
            CustomerEvent::PersonalDataErased(_) => c.personal = None,
        }
        Some(c)
    }
}

fn create(mut new: NewCustomer) -> Result<Vec<CustomerEvent>, CustomerError> {
    new.tax_location = new.tax_location.map(check_location).transpose()?;
    Ok(vec![CustomerEvent::Created(CustomerCreated {
        customer_id: new.customer_id,
        currency: new.currency,
        tax_exempt: new.tax_exempt,
        tax_location: new.tax_location,
        test_clock: new.test_clock,
        personal: new.personal,
    })])
}

fn update(c: &Customer, changes: CustomerChanges) -> Result<Vec<CustomerEvent>, CustomerError> {
    if changes.personal.is_some() && c.erased() {
        return Err(CustomerError::Erased);
    }
    // Once set (by the first invoice, or given), the currency stays: invoices, subscriptions
    // and the balance are in it (Stripe does the same).
    if let (Some(have), Some(wanted)) = (c.currency, changes.currency)
        && have != wanted
    {
        return Err(CustomerError::CurrencyLocked { have, wanted });
    }
    let event = CustomerUpdated {
        customer_id: c.id,
        currency: changes.currency.filter(|w| c.currency != Some(*w)),
        tax_exempt: changes.tax_exempt.filter(|t| *t != c.tax_exempt),
        tax_location: changes
            .tax_location
            .map(check_location)
            .transpose()?
            .filter(|l| c.tax_location.as_ref() != Some(l)),
        personal: changes.personal,
    };
    let nothing = event.currency.is_none()
        && event.tax_exempt.is_none()
        && event.tax_location.is_none()
        && event.personal.is_none();
    Ok(if nothing {
        vec![]
    } else {
        vec![CustomerEvent::Updated(event)]
    })
}

fn attach(
    c: &Customer,
    gateway: GatewayKind,
    token: String,
    set_default: bool,
    country: Option<String>,
    gateway_customer: Option<String>,
) -> Result<Vec<CustomerEvent>, CustomerError> {
    check_token(&token)?;
    if country
        .as_deref()
        .is_some_and(|k| k.len() != 2 || !k.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        return Err(CustomerError::CountryInvalid);
    }
    let country = country.map(|k| k.to_ascii_uppercase());
    let id = payment_method_id(c.id, gateway, &token);
    let mut events = vec![];
    if c.payment_method(id).is_none() {
        if c.payment_methods.len() >= PAYMENT_METHODS_MAX {
            return Err(CustomerError::TooManyPaymentMethods);
        }
        events.push(CustomerEvent::PaymentMethodAttached(
            PaymentMethodAttached {
                customer_id: c.id,
                payment_method_id: id,
                gateway,
                token,
                country,
                gateway_customer,
            },
        ));
    }
    // The first method becomes the default, as on Stripe's invoice settings.
    if set_default || c.default_payment_method.is_none() {
        events.extend(default_event(c, Some(id)));
    }
    Ok(events)
}

fn detach(c: &Customer, pm: PaymentMethodId) -> Result<Vec<CustomerEvent>, CustomerError> {
    if c.payment_method(pm).is_none() {
        return Err(CustomerError::PaymentMethodNotFound);
    }
    let mut events = vec![CustomerEvent::PaymentMethodDetached(
        PaymentMethodDetached {
            customer_id: c.id,
            payment_method_id: pm,
        },
    )];
    if c.default_payment_method == Some(pm) {
        events.extend(default_event(c, None));
    }
    Ok(events)
}

fn default_event(c: &Customer, pm: Option<PaymentMethodId>) -> Option<CustomerEvent> {
    (c.default_payment_method != pm).then_some(CustomerEvent::DefaultPaymentMethodSet(
        DefaultPaymentMethodSet {
            customer_id: c.id,
            payment_method_id: pm,
        },
    ))
}

fn adjust(
    c: &Customer,
    amount: Money,
    reason: String,
    source: Option<String>,
) -> Result<Vec<CustomerEvent>, CustomerError> {
    if source
        .as_ref()
        .is_some_and(|s| c.adjustment_sources.contains_key(s))
    {
        return Ok(vec![]);
    }
    if reason.trim().is_empty() || reason.chars().count() > REASON_MAX_CHARS {
        return Err(CustomerError::ReasonInvalid);
    }
    if amount.is_zero() {
        return Err(CustomerError::ZeroAdjustment);
    }
    // Adjustments from invoices carry their own (checked) amounts; a manual one is bounded.
    if source.is_none()
        && amount.amount_minor().unsigned_abs() > MANUAL_ADJUSTMENT_MAX.unsigned_abs()
    {
        return Err(CustomerError::AdjustmentTooLarge);
    }
    let currency = amount.currency();
    if let Some(have) = c.currency
        && have != currency
    {
        return Err(CustomerError::CurrencyLocked {
            have,
            wanted: currency,
        });
    }
    let after = Money::new(c.balance, currency).checked_add(amount)?;
    Ok(vec![CustomerEvent::BalanceAdjusted(BalanceAdjusted {
        customer_id: c.id,
        currency,
        amount: amount.amount_minor(),
        balance_after: after.amount_minor(),
        reason,
        source,
    })])
}

fn apply_credit(
    c: &Customer,
    source: String,
    up_to: Money,
) -> Result<Vec<CustomerEvent>, CustomerError> {
    let currency = up_to.currency();
    let balance = match c.currency {
        Some(have) if have == currency => c.balance,
        _ => 0,
    };
    // Credit (a negative balance) pays at most `up_to`; a debt (positive) is collected whole.
    let (applied, reason) = if balance < 0 {
        (
            balance.saturating_neg().min(up_to.amount_minor().max(0)),
            format!("credit applied to {source}"),
        )
    } else {
        // The invoice's amount due must hold its total and the debt.
        up_to.checked_add(Money::new(balance.max(0), currency))?;
        (
            balance.saturating_neg(),
            format!("balance owed added to {source}"),
        )
    };
    if applied == 0 || c.adjustment_sources.contains_key(&source) {
        return Ok(vec![]);
    }
    adjust(c, Money::new(applied, currency), reason, Some(source))
}

fn check_location(mut loc: TaxLocation) -> Result<TaxLocation, CustomerError> {
    let country_ok = loc.country.len() == 2 && loc.country.bytes().all(|b| b.is_ascii_alphabetic());
    let state_ok = loc.state.as_ref().is_none_or(|s| {
        !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !country_ok || !state_ok {
        return Err(CustomerError::TaxLocationInvalid);
    }
    loc.country = loc.country.to_ascii_uppercase();
    loc.state = loc.state.map(|s| s.to_ascii_uppercase());
    Ok(loc)
}

/// A token's shape, checked before it goes anywhere (never a card number).
///
/// # Errors
/// `TokenInvalid`, `CardNumberRefused`.
pub fn check_token(token: &str) -> Result<(), CustomerError> {
    if token.is_empty()
        || token.len() > TOKEN_MAX_LEN
        || !token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(CustomerError::TokenInvalid);
    }
    // A primary account number: 12 to 19 digits, possibly split by spaces or dashes.
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    let only_digits = token
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b' ');
    if only_digits && (12..=19).contains(&digits) {
        return Err(CustomerError::CardNumberRefused);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
