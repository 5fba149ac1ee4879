//! Analytics read models: payment outcomes per day, and MRR with its movements per month.
//!
//! Both keep counters as documents (`day:<YYYY-MM-DD>`, `month:<YYYY-MM>`, `total`), each a map
//! by currency, changed exactly once per event like every read model. Days and months are the
//! events' business time (UTC).
//!
//! MRR (Stripe's definition): what active and past-due subscriptions of licensed plans bill per
//! month — the price for the quantity (tiers included), normalized to a month: × 1/n for every
//! n months, × 1/12n for years, × 52/12n for weeks, × 365/12n for days, rounded half-even once.
//! Trialing, paused, canceled and unpaid subscriptions count 0; metered plans count 0 (usage is
//! not known in advance). Each change of a subscription's MRR is one movement: `new` (first time
//! above 0), `reactivation` (above 0 again), `expansion`, `contraction`, `churn` (to 0).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use commands::plan::UsageType;
use commands::pricing::calendar::IntervalUnit;
use commands::pricing::rounding::round_minor;
use commands::stored::DomainEvent;
use commands::subscription::{Subscription, SubscriptionEvent, SubscriptionStatus};
use ledger::event::RecordedEvent;
use ledger::money::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::projection::{Projection, ProjectionError, ReadSet, Table};

fn unreadable(name: &'static str, event: &RecordedEvent, reason: String) -> ProjectionError {
    ProjectionError::unreadable(name, event, reason)
}

fn add(a: &mut i64, b: i64) {
    // Counts and sums of i64 amounts: saturating is never reached by real volumes, and a
    // counter is not money that is owed.
    *a = a.saturating_add(b);
}

/// `day:<YYYY-MM-DD>` of a moment.
#[must_use]
pub fn day_key(t: DateTime<Utc>) -> String {
    match t.year() {
        y @ 0..=9999 => format!("day:{y:04}-{:02}-{:02}", t.month(), t.day()),
        // chrono's `%Y` beyond four digits (`+10000`, `-0001`): the keys rows were written with.
        _ => format!("day:{}", t.format("%Y-%m-%d")),
    }
}

/// `month:<YYYY-MM>` of a moment.
#[must_use]
pub fn month_key(t: DateTime<Utc>) -> String {
    match t.year() {
        y @ 0..=9999 => format!("month:{y:04}-{:02}", t.month()),
        _ => format!("month:{}", t.format("%Y-%m")),
    }
}

// ---------------------------------------------------------------------------------------------
// Payments

const PAYMENTS: &str = "payments";

/// Payment outcomes per day and currency.
pub struct Payments;

#[derive(Debug, Default, Serialize, Deserialize)]
struct ChargeNote {
    currency: String,
    amount: i64,
}

/// One day's outcomes in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCounts {
    pub succeeded: i64,
    pub succeeded_amount: i64,
    pub failed: i64,
    pub failed_amount: i64,
    /// Failures by `failure_code`.
    pub failure_codes: BTreeMap<String, i64>,
}

impl PaymentCounts {
    pub fn merge(&mut self, other: &PaymentCounts) {
        add(&mut self.succeeded, other.succeeded);
        add(&mut self.succeeded_amount, other.succeeded_amount);
        add(&mut self.failed, other.failed);
        add(&mut self.failed_amount, other.failed_amount);
        for (code, n) in &other.failure_codes {
            add(self.failure_codes.entry(code.clone()).or_insert(0), *n);
        }
    }
}

/// The fields payments reads of the charge events it counts (the rest of a payload is skipped).
#[derive(Deserialize)]
struct Requested {
    charge_id: String,
    amount: i64,
    currency: Currency,
}

#[derive(Deserialize)]
struct Succeeded {
    charge_id: String,
}

#[derive(Deserialize)]
struct Failed {
    charge_id: String,
    failure_code: String,
}

enum Counted {
    Requested(Requested),
    Succeeded(Succeeded),
    Failed(Failed),
}

/// The charge events payments counts, decoded; `None` for the others and for one that does not
/// decode (as a charge event that does not decode counts nothing).
fn charge_of(event: &RecordedEvent) -> Option<Counted> {
    if event.stream_id.category() != "charge" {
        return None;
    }
    let p = &event.payload;
    match event.event_type.as_str() {
        "ChargeRequested" => Requested::deserialize(p).ok().map(Counted::Requested),
        "ChargeSucceeded" => Succeeded::deserialize(p).ok().map(Counted::Succeeded),
        "ChargeFailed" => Failed::deserialize(p).ok().map(Counted::Failed),
        _ => None,
    }
}

impl Projection for Payments {
    fn name(&self) -> &'static str {
        PAYMENTS
    }

    fn table(&self) -> Table {
        Table::Docs
    }

    /// Read from the payload's ids, without decoding the whole event (`apply` decodes it).
    fn reads(&self, event: &RecordedEvent) -> Vec<String> {
        if event.stream_id.category() != "charge" {
            return Vec::new();
        }
        let Some(id) = event.payload.get("charge_id").and_then(|v| v.as_str()) else {
            return Vec::new();
        };
        match event.event_type.as_str() {
            "ChargeRequested" => vec![format!("charge:{id}")],
            "ChargeSucceeded" | "ChargeFailed" => {
                vec![format!("charge:{id}"), day_key(event.occurred_at)]
            }
            _ => Vec::new(),
        }
    }

    /// A charge's note is written by its own events only, from `ChargeRequested` (its first)
    /// on: the note that event reads is new.
    fn born(&self, event: &RecordedEvent) -> Option<String> {
        (event.stream_version == 1 && event.event_type == "ChargeRequested")
            .then(|| self.reads(event).into_iter().next())
            .flatten()
    }

    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let (charge_id, failure) = match charge_of(event) {
            Some(Counted::Requested(r)) => {
                let note = ChargeNote {
                    currency: r.currency.code().to_string(),
                    amount: r.amount,
                };
                let key = format!("charge:{}", r.charge_id);
                return set.keep(PAYMENTS, event, key, None, &note);
            }
            Some(Counted::Succeeded(s)) => (s.charge_id, None),
            Some(Counted::Failed(f)) => (f.charge_id, Some(f.failure_code)),
            None => return Ok(()),
        };
        let note_key = format!("charge:{charge_id}");
        let note: ChargeNote = set.note(PAYMENTS, event, &note_key)?;
        // The outcome is final: the note is not needed any more.
        set.remove(&note_key);
        let key = day_key(event.occurred_at);
        let mut day: BTreeMap<String, PaymentCounts> = set.note(PAYMENTS, event, &key)?;
        let counts = day.entry(note.currency).or_default();
        match failure {
            None => {
                add(&mut counts.succeeded, 1);
                add(&mut counts.succeeded_amount, note.amount);
            }
            Some(code) => {
                add(&mut counts.failed, 1);
                add(&mut counts.failed_amount, note.amount);
                add(counts.failure_codes.entry(code).or_insert(0), 1);
            }
        }
        set.keep(PAYMENTS, event, key, None, &day)
    }
}

// ---------------------------------------------------------------------------------------------
// MRR

const MRR: &str = "mrr";

/// MRR per currency, and its movements per month.
pub struct Mrr;

#[derive(Debug, Default, Serialize, Deserialize)]
struct SubscriptionNote {
    state: Option<Subscription>,
    mrr: i64,
    currency: String,
    /// Has had MRR above 0 before (a return is a reactivation).
    ever: bool,
}

/// One month's MRR movements in one currency (amounts per month, minor units).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Movements {
    pub new: i64,
    pub expansion: i64,
    pub contraction: i64,
    pub churn: i64,
    pub reactivation: i64,
    /// Subscriptions that started counting (new + reactivated) and that stopped (churned).
    pub subscriptions_started: i64,
    pub subscriptions_churned: i64,
}

impl Movements {
    /// `new + expansion + reactivation − contraction − churn`.
    #[must_use]
    pub fn net(&self) -> i64 {
        self.new
            .saturating_add(self.expansion)
            .saturating_add(self.reactivation)
            .saturating_sub(self.contraction)
            .saturating_sub(self.churn)
    }
}

/// The MRR now, in one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MrrTotal {
    pub mrr: i64,
    pub subscriptions: i64,
}

/// What `s` bills per month now (see the module doc).
fn monthly(s: &Subscription) -> Result<i64, String> {
    let counts = matches!(
        s.status,
        SubscriptionStatus::Active | SubscriptionStatus::PastDue
    );
    if !counts || s.plan.usage_type == UsageType::Metered {
        return Ok(0);
    }
    let per_period = s
        .plan
        .amount_for(u64::from(s.quantity))
        .map_err(|e| e.to_string())?;
    // amount × periods per year / 12, divided once and rounded once.
    let n = Decimal::from(s.plan.interval.count());
    let per_year = match s.plan.interval.unit() {
        IntervalUnit::Month => Decimal::from(12),
        IntervalUnit::Year => Decimal::ONE,
        IntervalUnit::Week => Decimal::from(52),
        IntervalUnit::Day => Decimal::from(365),
    };
    let exact = Decimal::from(per_period.amount_minor())
        .checked_mul(per_year)
        .and_then(|x| x.checked_div(Decimal::from(12) * n))
        .ok_or("MRR overflow")?;
    round_minor(exact).map_err(|e| e.to_string())
}

fn subscription_of(event: &RecordedEvent) -> Option<(String, SubscriptionEvent)> {
    let id = event.stream_id.as_str().strip_prefix("subscription-")?;
    SubscriptionEvent::from_stored(&event.event_type, &event.payload).map(|e| (id.to_string(), e))
}

impl Projection for Mrr {
    fn name(&self) -> &'static str {
        MRR
    }

    fn table(&self) -> Table {
        Table::Docs
    }

    fn reads(&self, event: &RecordedEvent) -> Vec<String> {
        match subscription_of(event) {
            Some((id, _)) => vec![
                format!("sub:{id}"),
                month_key(event.occurred_at),
                "total".to_string(),
            ],
            None => Vec::new(),
        }
    }

    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError> {
        use commands::aggregate::Aggregate;
        let Some((id, e)) = subscription_of(event) else {
            return Ok(());
        };
        let key = format!("sub:{id}");
        let mut note: SubscriptionNote = set.note(MRR, event, &key)?;
        note.state = Subscription::evolve(note.state.take(), &e, event.occurred_at);
        let Some(state) = &note.state else {
            return set.keep(MRR, event, key, None, &note);
        };
        let now = monthly(state).map_err(|r| unreadable(MRR, event, r))?;
        let before = note.mrr;
        let currency = state.plan.price.currency().code().to_string();
        if now != before {
            let month = month_key(event.occurred_at);
            let mut moves: BTreeMap<String, Movements> = set.note(MRR, event, &month)?;
            let m = moves.entry(currency.clone()).or_default();
            let delta = now.saturating_sub(before);
            match (before, now) {
                (0, _) if note.ever => {
                    add(&mut m.reactivation, now);
                    add(&mut m.subscriptions_started, 1);
                }
                (0, _) => {
                    add(&mut m.new, now);
                    add(&mut m.subscriptions_started, 1);
                }
                (_, 0) => {
                    add(&mut m.churn, before);
                    add(&mut m.subscriptions_churned, 1);
                }
                _ if delta > 0 => add(&mut m.expansion, delta),
                _ => add(&mut m.contraction, -delta),
            }
            set.keep(MRR, event, month, None, &moves)?;
            let mut total: BTreeMap<String, MrrTotal> = set.note(MRR, event, "total")?;
            let t = total.entry(currency.clone()).or_default();
            add(&mut t.mrr, delta);
            add(
                &mut t.subscriptions,
                i64::from(now > 0) - i64::from(before > 0),
            );
            set.keep(MRR, event, "total".to_string(), None, &total)?;
        }
        note.ever |= now > 0;
        note.mrr = now;
        note.currency = currency;
        set.keep(MRR, event, key, None, &note)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn day_and_month_keys_are_zero_padded_utc_dates() {
        let t = Utc.with_ymd_and_hms(2026, 3, 5, 23, 59, 59).unwrap();
        assert_eq!(day_key(t), "day:2026-03-05");
        assert_eq!(month_key(t), "month:2026-03");
        let t = Utc.with_ymd_and_hms(987, 11, 30, 0, 0, 0).unwrap();
        assert_eq!(day_key(t), "day:0987-11-30");
        assert_eq!(month_key(t), "month:0987-11");
        // Beyond four digits, as chrono's `%Y` writes them (the keys of rows written before).
        for t in [
            Utc.with_ymd_and_hms(10_000, 1, 2, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 12, 31, 0, 0, 0).unwrap(),
        ] {
            assert_eq!(day_key(t), format!("day:{}", t.format("%Y-%m-%d")));
            assert_eq!(month_key(t), format!("month:{}", t.format("%Y-%m")));
        }
    }
}
