//! `billing bench clock`: how long a test clock takes to advance a monthly subscription through
//! `--years` of renewals (each renewal: the subscription event, an invoice drafted, numbered,
//! finalized and paid through the sandbox gateway). Prints one JSON line.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use commands::billing::Subscribe;
use commands::charge::unrendered;
use commands::customer::{Customer, CustomerCommand, GatewayKind, NewCustomer, PersonalData};
use commands::plan::{NewPlan, Plan, PlanCommand, UsageType};
use commands::pricing::{Interval, IntervalUnit};
use commands::test_clock::{TestClock, TestClockCommand};
use gateways::SandboxGateway;
use ledger::event::Metadata;
use ledger::ids::{CustomerId, PlanId, SubscriptionId, TestClockId};
use ledger::money::{Currency, Money};
use serde_json::json;

use crate::config::StoreConfig;
use crate::state::AppState;

pub async fn run(config: &StoreConfig, years: u32) -> Result<ExitCode, String> {
    let store = super::open_migrated(config).await?;
    let state = AppState::new(
        &store,
        Arc::new(SandboxGateway::new()),
        config.master_key()?,
    );
    let e = |e: commands::CommandError| e.to_string();
    let m = Metadata::default();
    let start = Utc
        .with_ymd_and_hms(2026, 1, 31, 10, 0, 0)
        .single()
        .ok_or("date")?;
    let (clock, customer, plan) = (TestClockId::new(), CustomerId::new(), PlanId::new());
    let x = &state.executor;
    let create_clock = TestClockCommand::Create {
        test_clock_id: clock,
        frozen_time: start,
        name: Some("bench".into()),
    };
    x.execute::<TestClock>(&clock, create_clock, &m, None, &unrendered)
        .await
        .map_err(e)?;
    let personal = state
        .customers
        .seal(customer, &PersonalData::default())
        .await
        .map_err(e)?;
    let new = NewCustomer {
        customer_id: customer,
        currency: Some(Currency::USD),
        tax_exempt: true,
        tax_location: None,
        test_clock: Some(clock),
        personal,
    };
    x.execute::<Customer>(
        &customer,
        CustomerCommand::Create(new),
        &m,
        None,
        &unrendered,
    )
    .await
    .map_err(e)?;
    let attach = CustomerCommand::AttachPaymentMethod {
        gateway: GatewayKind::Sandbox,
        token: "tok_visa".into(),
        set_default: true,
        country: None,
        gateway_customer: None,
    };
    x.execute::<Customer>(&customer, attach, &m, None, &unrendered)
        .await
        .map_err(e)?;
    let new_plan = NewPlan {
        plan_id: plan,
        name: "Bench".into(),
        price: Money::new(2000, Currency::USD),
        prices: vec![],
        interval: Interval::new(IntervalUnit::Month, 1).map_err(|e| e.to_string())?,
        usage_type: UsageType::Licensed,
        trial_days: 0,
        tiers: vec![],
    };
    x.execute::<Plan>(&plan, PlanCommand::Create(new_plan), &m, None, &unrendered)
        .await
        .map_err(e)?;
    let subscribe = Subscribe {
        subscription_id: SubscriptionId::new(),
        customer_id: customer,
        plan_id: plan,
        quantity: None,
        trial_days: None,
        billing_cycle_anchor: None,
    };
    state
        .billing
        .subscribe(subscribe, &m, None, &unrendered)
        .await
        .map_err(e)?;
    let before = state
        .store
        .head()
        .await
        .map_err(|e| e.to_string())?
        .position;
    let to = start
        .checked_add_months(chrono::Months::new(12 * years.clamp(1, 2)))
        .ok_or("date")?;
    let started = Instant::now();
    state
        .billing
        .advance_clock(clock, to, &m, None, &unrendered)
        .await
        .map_err(e)?;
    let seconds = started.elapsed().as_secs_f64();
    let after = state
        .store
        .head()
        .await
        .map_err(|e| e.to_string())?
        .position;
    let renewals = 12 * years.clamp(1, 2);
    println!(
        "{}",
        json!({
            "store": config.describe(),
            "renewals": renewals,
            "events": after.0 - before.0,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "renewals_per_sec": (f64::from(renewals) / seconds).round(),
        })
    );
    Ok(ExitCode::SUCCESS)
}
