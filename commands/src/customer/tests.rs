use chrono::{TimeZone, Utc};
use ledger::money::{Currency, Money};

use super::*;
use crate::stored::DomainEvent;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

fn usd() -> Currency {
    Currency::parse("usd").unwrap()
}

fn new_customer() -> NewCustomer {
    NewCustomer {
        customer_id: CustomerId::new(),
        currency: None,
        tax_exempt: false,
        tax_location: Some(TaxLocation {
            country: "de".into(),
            state: None,
        }),
        test_clock: None,
        personal: "v1.sealed".into(),
    }
}

/// Decides and folds, as the executor does.
fn run(
    state: Option<Customer>,
    command: CustomerCommand,
) -> Result<(Option<Customer>, Vec<CustomerEvent>), CustomerError> {
    let events = Customer::decide(state.as_ref(), command, now())?;
    let mut s = state;
    for e in &events {
        let json = e.payload();
        let back = CustomerEvent::from_stored(e.event_type(), &json).expect("round trip");
        assert_eq!(&back, e);
        s = Customer::evolve(s, e, now());
    }
    Ok((s, events))
}

fn created() -> Customer {
    run(None, CustomerCommand::Create(new_customer()))
        .unwrap()
        .0
        .unwrap()
}

fn attach(
    c: Customer,
    token: &str,
    set_default: bool,
) -> Result<(Option<Customer>, Vec<CustomerEvent>), CustomerError> {
    run(
        Some(c),
        CustomerCommand::AttachPaymentMethod {
            gateway: GatewayKind::Sandbox,
            token: token.into(),
            set_default,
            country: None,
            gateway_customer: None,
        },
    )
}

#[test]
fn create_normalizes_the_tax_location_and_refuses_twice() {
    let c = created();
    assert_eq!(c.tax_location.as_ref().unwrap().country, "DE");
    assert!(!c.erased());
    let again = Customer::decide(Some(&c), CustomerCommand::Create(new_customer()), now());
    assert_eq!(again, Err(CustomerError::AlreadyExists(c.id)));
    let mut bad = new_customer();
    bad.tax_location = Some(TaxLocation {
        country: "DEU".into(),
        state: None,
    });
    assert_eq!(
        Customer::decide(None, CustomerCommand::Create(bad), now()),
        Err(CustomerError::TaxLocationInvalid)
    );
}

#[test]
fn commands_on_a_missing_customer_are_not_found() {
    let r = Customer::decide(None, CustomerCommand::ErasePersonalData, now());
    assert_eq!(r, Err(CustomerError::NotFound));
}

#[test]
fn the_first_payment_method_becomes_the_default_and_attaching_twice_changes_nothing() {
    let (c, events) = attach(created(), "tok_visa", false).unwrap();
    let c = c.unwrap();
    assert_eq!(events.len(), 2);
    let pm = c.payment_methods[0].id;
    assert_eq!(c.default_payment_method, Some(pm));
    assert_eq!(
        pm,
        payment_method_id(c.id, GatewayKind::Sandbox, "tok_visa")
    );
    let (c, events) = attach(c, "tok_visa", false).unwrap();
    assert!(events.is_empty());
    let (c, events) = attach(c.unwrap(), "tok_mastercard", false).unwrap();
    let c = c.unwrap();
    assert_eq!(events.len(), 1, "a second method does not take the default");
    assert_eq!(c.default_payment_method, Some(pm));
    let (c, _) = attach(c, "tok_mastercard", true).unwrap();
    assert_ne!(c.unwrap().default_payment_method, Some(pm));
}

#[test]
fn card_numbers_and_bad_tokens_are_refused() {
    for pan in ["4242424242424242", "4242-4242-4242-4242", "378282246310005"] {
        assert_eq!(
            attach(created(), pan, false).unwrap_err(),
            CustomerError::CardNumberRefused,
            "{pan}"
        );
    }
    for bad in ["", "tok visa", &"x".repeat(TOKEN_MAX_LEN + 1)] {
        assert_eq!(
            attach(created(), bad, false).unwrap_err(),
            CustomerError::TokenInvalid
        );
    }
}

#[test]
fn detaching_the_default_clears_it_and_unknown_methods_are_not_found() {
    let (c, _) = attach(created(), "tok_visa", false).unwrap();
    let c = c.unwrap();
    let pm = c.default_payment_method.unwrap();
    let (c, events) = run(Some(c), CustomerCommand::DetachPaymentMethod(pm)).unwrap();
    assert_eq!(events.len(), 2);
    let c = c.unwrap();
    assert!(c.payment_methods.is_empty());
    assert_eq!(c.default_payment_method, None);
    assert_eq!(
        run(Some(c.clone()), CustomerCommand::DetachPaymentMethod(pm)).unwrap_err(),
        CustomerError::PaymentMethodNotFound
    );
    assert_eq!(
        run(Some(c), CustomerCommand::SetDefaultPaymentMethod(pm)).unwrap_err(),
        CustomerError::PaymentMethodNotFound
    );
}

#[test]
fn at_most_fifty_payment_methods() {
    let mut c = created();
    for i in 0..PAYMENT_METHODS_MAX {
        c = attach(c, &format!("tok_{i}"), false).unwrap().0.unwrap();
    }
    assert_eq!(
        attach(c, "tok_one_more", false).unwrap_err(),
        CustomerError::TooManyPaymentMethods
    );
}

#[test]
fn balance_adjustments_add_up_and_lock_the_currency() {
    let adjust = |c: Customer, amount: i64, currency: Currency| {
        run(
            Some(c),
            CustomerCommand::AdjustBalance {
                amount: Money::new(amount, currency),
                reason: "goodwill".into(),
                source: None,
            },
        )
    };
    let c = adjust(created(), -500, usd()).unwrap().0.unwrap();
    assert_eq!((c.balance, c.currency), (-500, Some(usd())));
    let c = adjust(c, 200, usd()).unwrap().0.unwrap();
    assert_eq!(c.balance, -300);
    let eur = Currency::parse("eur").unwrap();
    assert!(matches!(
        adjust(c.clone(), 1, eur),
        Err(CustomerError::CurrencyLocked { .. })
    ));
    let update = CustomerCommand::Update(CustomerChanges {
        currency: Some(eur),
        ..CustomerChanges::default()
    });
    assert!(matches!(
        run(Some(c.clone()), update),
        Err(CustomerError::CurrencyLocked { .. })
    ));
    assert_eq!(
        adjust(c.clone(), 0, usd()).unwrap_err(),
        CustomerError::ZeroAdjustment
    );
    assert_eq!(
        adjust(c.clone(), 100_000_000, usd()).unwrap_err(),
        CustomerError::AdjustmentTooLarge
    );
    // Adjustments from invoices are not bounded that way, but never overflow silently.
    let sourced = |c: Customer, amount: i64, source: &str| {
        run(
            Some(c),
            CustomerCommand::AdjustBalance {
                amount: Money::new(amount, usd()),
                reason: "invoice".into(),
                source: Some(source.into()),
            },
        )
    };
    let c = sourced(c, i64::MAX - 10, "in_1").unwrap().0.unwrap();
    assert!(
        matches!(sourced(c, 1_000, "in_2"), Err(CustomerError::Money(_))),
        "overflow is refused"
    );
}

#[test]
fn an_adjustment_from_a_source_applies_once() {
    let adjust = |c: Customer| {
        run(
            Some(c),
            CustomerCommand::AdjustBalance {
                amount: Money::new(-700, usd()),
                reason: "credit from in_1".into(),
                source: Some("in_1".into()),
            },
        )
    };
    let (c, events) = adjust(created()).unwrap();
    assert_eq!(events.len(), 1);
    let (c, events) = adjust(c.unwrap()).unwrap();
    assert!(events.is_empty());
    assert_eq!(c.unwrap().balance, -700);
}

#[test]
fn updates_record_only_what_changed() {
    let c = created();
    let same = CustomerCommand::Update(CustomerChanges {
        tax_exempt: Some(false),
        tax_location: Some(TaxLocation {
            country: "de".into(),
            state: None,
        }),
        ..CustomerChanges::default()
    });
    assert!(run(Some(c.clone()), same).unwrap().1.is_empty());
    let change = CustomerCommand::Update(CustomerChanges {
        tax_exempt: Some(true),
        personal: Some("v1.other".into()),
        ..CustomerChanges::default()
    });
    let c = run(Some(c), change).unwrap().0.unwrap();
    assert!(c.tax_exempt);
    assert_eq!(c.personal.as_deref(), Some("v1.other"));
}

#[test]
fn erasure_drops_the_sealed_data_once_and_forbids_new_personal_data() {
    let (c, events) = run(Some(created()), CustomerCommand::ErasePersonalData).unwrap();
    assert_eq!(events.len(), 1);
    let c = c.unwrap();
    assert!(c.erased());
    assert!(
        run(Some(c.clone()), CustomerCommand::ErasePersonalData)
            .unwrap()
            .1
            .is_empty()
    );
    let update = CustomerCommand::Update(CustomerChanges {
        personal: Some("v1.again".into()),
        ..CustomerChanges::default()
    });
    assert_eq!(
        run(Some(c.clone()), update).unwrap_err(),
        CustomerError::Erased
    );
    // Money facts survive: payment methods and balance still work.
    assert!(attach(c, "tok_visa", false).is_ok());
}

#[test]
fn credit_is_applied_up_to_what_is_available_and_once_per_source() {
    let c = run(
        Some(created()),
        CustomerCommand::AdjustBalance {
            amount: Money::new(-2000, usd()),
            reason: "goodwill".into(),
            source: None,
        },
    )
    .unwrap()
    .0
    .unwrap();
    let apply = |c: Customer, source: &str, up_to: i64| {
        run(
            Some(c),
            CustomerCommand::ApplyCredit {
                source: source.into(),
                up_to: Money::new(up_to, usd()),
            },
        )
        .unwrap()
        .0
        .unwrap()
    };
    let c = apply(c, "in_1", 1500);
    assert_eq!((c.balance, c.adjustment_sources["in_1"]), (-500, 1500));
    let c = apply(c, "in_1", 1500);
    assert_eq!(c.balance, -500, "once per source");
    let c = apply(c, "in_2", 1500);
    assert_eq!((c.balance, c.adjustment_sources["in_2"]), (0, 500));
    let c = apply(c, "in_3", 1500);
    assert!(!c.adjustment_sources.contains_key("in_3"), "no credit left");
    // A debt is collected whole by the next invoice, whatever its total; once.
    let owing = run(
        Some(c),
        CustomerCommand::AdjustBalance {
            amount: Money::new(700, usd()),
            reason: "late fee".into(),
            source: None,
        },
    )
    .unwrap()
    .0
    .unwrap();
    let c = apply(owing, "in_4", 100);
    assert_eq!((c.balance, c.adjustment_sources["in_4"]), (0, -700));
    let c = apply(c, "in_4", 100);
    assert_eq!(c.balance, 0, "once per source");
    // A debt that would not fit beside the invoice's total is refused, nothing taken.
    let owing = run(
        Some(c),
        CustomerCommand::AdjustBalance {
            amount: Money::new(10, usd()),
            reason: "fee".into(),
            source: None,
        },
    )
    .unwrap()
    .0
    .unwrap();
    let too_much = run(
        Some(owing),
        CustomerCommand::ApplyCredit {
            source: "in_5".into(),
            up_to: Money::new(i64::MAX - 5, usd()),
        },
    );
    assert!(too_much.is_err(), "{too_much:?}");
}
