//! Billing intervals and the periods they cut out of time.
//!
//! A subscription's periods are counted from its billing-cycle *anchor*: period `n` starts at
//! [`period_boundary`]`(anchor, interval, n)`, which is always computed from the anchor itself,
//! never by adding one interval to the previous boundary. Months and years add with
//! end-of-month clamping, so the anchor day comes back whenever the month has it:
//! anchor Jan 31 → Feb 28 (29 in a leap year) → Mar 31 → Apr 30; anchor Feb 29 2024 →
//! Feb 28 2025 → … → Feb 29 2028. Days are 86 400 s (UTC has no daylight saving), weeks 7 days.
//! The time of day of the anchor is kept.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Months, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// The unit of a billing [`Interval`]. JSON: `"day"`, `"week"`, `"month"`, `"year"`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntervalUnit {
    /// 86 400 seconds.
    Day,
    /// 7 days.
    Week,
    /// A calendar month, with end-of-month clamping.
    Month,
    /// Twelve calendar months, with end-of-month clamping (Feb 29).
    Year,
}

impl IntervalUnit {
    /// The lowercase name, as in JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            IntervalUnit::Day => "day",
            IntervalUnit::Week => "week",
            IntervalUnit::Month => "month",
            IntervalUnit::Year => "year",
        }
    }

    /// The largest count allowed with this unit: an interval is at most one year long
    /// (365 days, 52 weeks, 12 months or 1 year), as Stripe allowed for a plan.
    #[must_use]
    pub const fn max_count(self) -> u32 {
        match self {
            IntervalUnit::Day => 365,
            IntervalUnit::Week => 52,
            IntervalUnit::Month => 12,
            IntervalUnit::Year => 1,
        }
    }
}

impl FromStr for IntervalUnit {
    type Err = IntervalError;

    /// Parses the lowercase name (`"month"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(IntervalUnit::Day),
            "week" => Ok(IntervalUnit::Week),
            "month" => Ok(IntervalUnit::Month),
            "year" => Ok(IntervalUnit::Year),
            _ => Err(IntervalError::UnknownUnit(s.to_owned())),
        }
    }
}

impl fmt::Display for IntervalUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why an interval was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    /// The unit is not `day`, `week`, `month` or `year`.
    #[error("unknown interval unit {0:?} (expected day, week, month or year)")]
    UnknownUnit(String),
    /// A count of zero.
    #[error("interval count must be at least 1")]
    ZeroCount,
    /// The interval would be longer than one year.
    #[error("interval of {count} {unit}s is longer than one year (at most {max} {unit}s)")]
    TooLong {
        /// The unit asked for.
        unit: IntervalUnit,
        /// The count asked for.
        count: u32,
        /// [`IntervalUnit::max_count`] of the unit.
        max: u32,
    },
}

/// A billing interval: `count` × `unit`, with `1 ≤ count ≤ unit.max_count()` (at most a year).
///
/// JSON (Stripe's names): `{"interval": "month", "interval_count": 3}`; a missing
/// `interval_count` means 1; an invalid one is refused when deserializing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "RawInterval", into = "RawInterval")]
pub struct Interval {
    unit: IntervalUnit,
    count: u32,
}

impl Interval {
    /// `count` × `unit`.
    ///
    /// # Errors
    /// [`IntervalError::ZeroCount`] for 0, [`IntervalError::TooLong`] beyond one year.
    pub fn new(unit: IntervalUnit, count: u32) -> Result<Interval, IntervalError> {
        let max = unit.max_count();
        match count {
            0 => Err(IntervalError::ZeroCount),
            c if c > max => Err(IntervalError::TooLong { unit, count, max }),
            _ => Ok(Interval { unit, count }),
        }
    }

    /// [`Interval::new`] with the unit's name to parse (`"week"`).
    ///
    /// # Errors
    /// [`IntervalError::UnknownUnit`], or as for [`Interval::new`].
    pub fn parse(unit: &str, count: u32) -> Result<Interval, IntervalError> {
        Interval::new(unit.parse()?, count)
    }

    /// The unit.
    #[must_use]
    pub const fn unit(&self) -> IntervalUnit {
        self.unit
    }

    /// How many units one period lasts (≥ 1).
    #[must_use]
    pub const fn count(&self) -> u32 {
        self.count
    }
}

/// The JSON shape of an [`Interval`], before validation.
#[derive(Serialize, Deserialize)]
struct RawInterval {
    interval: IntervalUnit,
    #[serde(default = "one")]
    interval_count: u32,
}

const fn one() -> u32 {
    1
}

impl TryFrom<RawInterval> for Interval {
    type Error = IntervalError;

    fn try_from(raw: RawInterval) -> Result<Self, Self::Error> {
        Interval::new(raw.interval, raw.interval_count)
    }
}

impl From<Interval> for RawInterval {
    fn from(interval: Interval) -> Self {
        RawInterval {
            interval: interval.unit,
            interval_count: interval.count,
        }
    }
}

/// The length of one period: whole days (86 400 s each) or calendar months.
enum Length {
    Days(u32),
    Months(u32),
}

impl Interval {
    fn length(self) -> Length {
        // Counts are at most 52 weeks or 1 year, so these products cannot saturate.
        match self.unit {
            IntervalUnit::Day => Length::Days(self.count),
            IntervalUnit::Week => Length::Days(self.count.saturating_mul(7)),
            IntervalUnit::Month => Length::Months(self.count),
            IntervalUnit::Year => Length::Months(self.count.saturating_mul(12)),
        }
    }
}

/// The start of period `n` counted from `anchor` (`n = 0` is the anchor itself), computed from
/// the anchor with end-of-month clamping for months and years; `None` if it falls outside the
/// dates `chrono` can represent.
#[must_use]
pub fn period_boundary(anchor: DateTime<Utc>, interval: Interval, n: u32) -> Option<DateTime<Utc>> {
    match interval.length() {
        Length::Days(days) => {
            let days = i64::from(days).checked_mul(i64::from(n))?;
            anchor.checked_add_signed(TimeDelta::try_days(days)?)
        }
        // chrono clamps the day to the end of the target month and keeps the time of day.
        Length::Months(months) => anchor.checked_add_months(Months::new(months.checked_mul(n)?)),
    }
}

/// The period `[start, end)` that contains `at`, for `at ≥ anchor` (`None` before the anchor or
/// beyond representable dates). The index is estimated arithmetically and then corrected by a
/// bounded number of steps, so this is O(1) however far `at` is from the anchor.
#[must_use]
pub fn period_containing(
    anchor: DateTime<Utc>,
    interval: Interval,
    at: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    // The estimate is exact for days and weeks and at most one too high for months and years
    // (when `at` is in the boundary's month but before its day or time).
    const MAX_STEPS: usize = 4;
    if at < anchor {
        return None;
    }
    let mut n = estimate_index(anchor, interval, at)?;
    for _ in 0..MAX_STEPS {
        let start = period_boundary(anchor, interval, n)?;
        if start > at {
            n = n.checked_sub(1)?;
            continue;
        }
        let end = period_boundary(anchor, interval, n.checked_add(1)?)?;
        if at < end {
            return Some((start, end));
        }
        n = n.checked_add(1)?;
    }
    None
}

fn estimate_index(anchor: DateTime<Utc>, interval: Interval, at: DateTime<Utc>) -> Option<u32> {
    let index = match interval.length() {
        Length::Days(days) => {
            let period_seconds = i64::from(days).checked_mul(86_400)?;
            // Whole seconds elapsed (truncated, and elapsed ≥ 0, so this is a floor).
            let elapsed = at.signed_duration_since(anchor).num_seconds();
            elapsed.checked_div(period_seconds)?
        }
        Length::Months(months) => {
            let month_index = |t: DateTime<Utc>| {
                i64::from(t.year())
                    .checked_mul(12)?
                    .checked_add(i64::from(t.month0()))
            };
            let elapsed = month_index(at)?.checked_sub(month_index(anchor)?)?;
            elapsed.checked_div(i64::from(months))?
        }
    };
    u32::try_from(index).ok()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Timelike};
    use proptest::prelude::*;

    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, s)
            .single()
            .expect("valid date")
    }

    fn every(unit: IntervalUnit, count: u32) -> Interval {
        Interval::new(unit, count).expect("valid interval")
    }

    fn boundaries(anchor: DateTime<Utc>, interval: Interval, upto: u32) -> Vec<DateTime<Utc>> {
        (0..=upto)
            .map(|n| period_boundary(anchor, interval, n).expect("in range"))
            .collect()
    }

    #[test]
    fn month_end_anchor_keeps_its_day() {
        let monthly = every(IntervalUnit::Month, 1);
        let anchor = utc(2025, 1, 31, 10, 30, 0);
        assert_eq!(
            boundaries(anchor, monthly, 4),
            [
                anchor,
                utc(2025, 2, 28, 10, 30, 0),
                utc(2025, 3, 31, 10, 30, 0),
                utc(2025, 4, 30, 10, 30, 0),
                utc(2025, 5, 31, 10, 30, 0),
            ]
        );
        let leap = utc(2024, 1, 31, 0, 0, 0);
        assert_eq!(
            period_boundary(leap, monthly, 1),
            Some(utc(2024, 2, 29, 0, 0, 0))
        );
        assert_eq!(
            period_boundary(leap, monthly, 12),
            Some(utc(2025, 1, 31, 0, 0, 0))
        );
        let quarterly = every(IntervalUnit::Month, 3);
        assert_eq!(
            period_boundary(utc(2024, 11, 30, 0, 0, 0), quarterly, 1),
            Some(utc(2025, 2, 28, 0, 0, 0))
        );
    }

    #[test]
    fn leap_day_anchor_yearly() {
        let yearly = every(IntervalUnit::Year, 1);
        let anchor = utc(2024, 2, 29, 12, 0, 0);
        assert_eq!(
            boundaries(anchor, yearly, 4)[1..],
            [
                utc(2025, 2, 28, 12, 0, 0),
                utc(2026, 2, 28, 12, 0, 0),
                utc(2027, 2, 28, 12, 0, 0),
                utc(2028, 2, 29, 12, 0, 0),
            ]
        );
    }

    #[test]
    fn days_and_weeks_and_time_of_day() {
        let anchor = utc(2025, 3, 30, 23, 59, 59) + TimeDelta::nanoseconds(123_456_789);
        let b = period_boundary(anchor, every(IntervalUnit::Day, 3), 2).expect("in range");
        assert_eq!(b, anchor + TimeDelta::days(6));
        assert_eq!(b.nanosecond(), 123_456_789);
        let w = period_boundary(anchor, every(IntervalUnit::Week, 2), 3).expect("in range");
        assert_eq!(w, anchor + TimeDelta::days(42));
        let m = period_boundary(anchor, every(IntervalUnit::Month, 1), 2).expect("in range");
        assert_eq!(
            m,
            utc(2025, 5, 30, 23, 59, 59) + TimeDelta::nanoseconds(123_456_789)
        );
        assert_eq!(
            period_boundary(anchor, every(IntervalUnit::Year, 1), 0),
            Some(anchor)
        );
    }

    #[test]
    fn out_of_range_is_none() {
        let anchor = utc(2025, 1, 1, 0, 0, 0);
        for unit in [
            IntervalUnit::Day,
            IntervalUnit::Week,
            IntervalUnit::Month,
            IntervalUnit::Year,
        ] {
            let interval = every(unit, unit.max_count());
            assert_eq!(period_boundary(anchor, interval, u32::MAX), None, "{unit}");
            assert_eq!(period_boundary(DateTime::<Utc>::MAX_UTC, interval, 1), None);
        }
    }

    #[test]
    fn interval_bounds() {
        assert_eq!(
            Interval::new(IntervalUnit::Month, 0),
            Err(IntervalError::ZeroCount)
        );
        for (unit, max) in [
            (IntervalUnit::Day, 365),
            (IntervalUnit::Week, 52),
            (IntervalUnit::Month, 12),
            (IntervalUnit::Year, 1),
        ] {
            assert!(Interval::new(unit, max).is_ok(), "{unit}");
            assert_eq!(
                Interval::new(unit, max + 1),
                Err(IntervalError::TooLong {
                    unit,
                    count: max + 1,
                    max
                })
            );
        }
        assert_eq!(Interval::parse("week", 2), Ok(every(IntervalUnit::Week, 2)));
        assert_eq!(
            Interval::parse("Month", 1),
            Err(IntervalError::UnknownUnit("Month".into()))
        );
        assert_eq!(
            IntervalError::TooLong {
                unit: IntervalUnit::Year,
                count: 2,
                max: 1
            }
            .to_string(),
            "interval of 2 years is longer than one year (at most 1 years)"
        );
    }

    #[test]
    fn interval_json() {
        let quarterly = every(IntervalUnit::Month, 3);
        let json = serde_json::to_value(quarterly).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"interval": "month", "interval_count": 3})
        );
        assert_eq!(
            serde_json::from_value::<Interval>(json).ok(),
            Some(quarterly)
        );
        let weekly: Interval = serde_json::from_str(r#"{"interval":"week"}"#).expect("default 1");
        assert_eq!(weekly, every(IntervalUnit::Week, 1));
        for bad in [
            r#"{"interval":"month","interval_count":0}"#,
            r#"{"interval":"year","interval_count":2}"#,
            r#"{"interval":"fortnight","interval_count":1}"#,
            r#"{"interval":"month","interval_count":-1}"#,
        ] {
            assert!(serde_json::from_str::<Interval>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn containing_period() {
        let monthly = every(IntervalUnit::Month, 1);
        let anchor = utc(2025, 1, 31, 10, 30, 0);
        let feb28 = utc(2025, 2, 28, 10, 30, 0);
        let mar31 = utc(2025, 3, 31, 10, 30, 0);
        assert_eq!(
            period_containing(anchor, monthly, anchor - TimeDelta::seconds(1)),
            None
        );
        assert_eq!(
            period_containing(anchor, monthly, anchor),
            Some((anchor, feb28))
        );
        assert_eq!(
            period_containing(anchor, monthly, utc(2025, 2, 28, 10, 29, 59)),
            Some((anchor, feb28))
        );
        assert_eq!(
            period_containing(anchor, monthly, feb28),
            Some((feb28, mar31))
        );
        assert_eq!(
            period_containing(anchor, monthly, utc(2025, 3, 31, 9, 0, 0)),
            Some((feb28, mar31))
        );
        let far = period_containing(anchor, monthly, utc(2425, 6, 15, 0, 0, 0));
        assert_eq!(
            far,
            Some((utc(2425, 5, 31, 10, 30, 0), utc(2425, 6, 30, 10, 30, 0)))
        );
        let daily = every(IntervalUnit::Day, 1);
        let half = anchor + TimeDelta::milliseconds(500);
        let just_before = anchor + TimeDelta::days(1) - TimeDelta::milliseconds(1);
        assert_eq!(
            period_containing(half, daily, just_before + TimeDelta::milliseconds(500)),
            Some((half, half + TimeDelta::days(1)))
        );
    }

    fn any_interval() -> impl Strategy<Value = Interval> {
        prop_oneof![
            Just(IntervalUnit::Day),
            Just(IntervalUnit::Week),
            Just(IntervalUnit::Month),
            Just(IntervalUnit::Year),
        ]
        .prop_flat_map(|unit| (1..=unit.max_count()).prop_map(move |c| every(unit, c)))
    }

    /// Instants from 1900 to 2200, to the nanosecond.
    fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
        (-2_208_988_800_i64..7_258_118_400, 0..1_000_000_000_u32)
            .prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).expect("in range"))
    }

    proptest! {
        #[test]
        fn boundaries_strictly_increase(
            anchor in any_instant(), interval in any_interval(), n in 0..2_000_u32,
        ) {
            let a = period_boundary(anchor, interval, n).expect("in range");
            let b = period_boundary(anchor, interval, n + 1).expect("in range");
            prop_assert!(a < b);
            prop_assert_eq!(a.time(), anchor.time());
        }

        #[test]
        fn monthly_boundaries_keep_the_anchor_day(
            anchor in any_instant(), count in 1..=12_u32, n in 0..2_000_u32,
        ) {
            let b = period_boundary(anchor, every(IntervalUnit::Month, count), n).expect("in range");
            let months = |t: DateTime<Utc>| i64::from(t.year()) * 12 + i64::from(t.month0());
            prop_assert_eq!(months(b) - months(anchor), i64::from(count * n));
            prop_assert_eq!(b.day(), anchor.day().min(u32::from(b.num_days_in_month())));
            prop_assert_eq!(b.time(), anchor.time());
        }

        #[test]
        fn containing_period_contains(
            anchor in any_instant(),
            interval in any_interval(),
            offset_ms in 0..5_000_000_000_000_i64,
        ) {
            let at = anchor + TimeDelta::milliseconds(offset_ms);
            let (start, end) = period_containing(anchor, interval, at).expect("in range");
            prop_assert!(start <= at && at < end);
            prop_assert!(start >= anchor);
            // `start` is itself a boundary: the period containing it starts there.
            prop_assert_eq!(period_containing(anchor, interval, start), Some((start, end)));
        }
    }
}
