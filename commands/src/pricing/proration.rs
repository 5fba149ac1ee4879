//! Proration by the second, as Stripe does it: when a subscription changes mid-period, the
//! customer is credited the unused time of the old price and charged the remaining time of the
//! new one. Each line is `price × remaining / total`, rounded once with
//! [`round_minor`]; instants count in whole Unix seconds.

use chrono::{DateTime, Utc};
use ledger::money::{Money, MoneyError};
use rust_decimal::Decimal;

use super::rounding::round_minor;

/// Why a proration could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProrationError {
    /// The period does not contain a whole second (`end` is not at least one second after
    /// `start`, counting in whole Unix seconds).
    #[error("empty billing period: {start} .. {end}")]
    EmptyPeriod {
        /// Start of the period.
        start: DateTime<Utc>,
        /// End of the period (exclusive).
        end: DateTime<Utc>,
    },
    /// The change instant is not within `[start, end)`.
    #[error("change at {at} is outside the billing period {start} .. {end}")]
    OutsidePeriod {
        /// The change instant.
        at: DateTime<Utc>,
        /// Start of the period.
        start: DateTime<Utc>,
        /// End of the period (exclusive).
        end: DateTime<Utc>,
    },
    /// Different currencies, or an amount too large to represent.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The two proration lines of a price change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProrationLines {
    /// Credit for the unused time of the old price (≤ 0 for a non-negative price).
    pub credit: Money,
    /// Charge for the remaining time of the new price (≥ 0 for a non-negative price).
    pub charge: Money,
}

impl ProrationLines {
    /// `credit + charge`: what the change adds to the next invoice.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the sum does not fit in an `i64`.
    pub fn net(&self) -> Result<Money, MoneyError> {
        self.credit.checked_add(self.charge)
    }
}

/// Credit for the unused time of `price` after `change_at`: `−price × remaining / total`.
///
/// # Errors
/// [`ProrationError::EmptyPeriod`], [`ProrationError::OutsidePeriod`] (`change_at` must be in
/// `[start, end)`), or [`ProrationError::Money`] on overflow.
pub fn unused_time_credit(
    price: Money,
    period: (DateTime<Utc>, DateTime<Utc>),
    change_at: DateTime<Utc>,
) -> Result<Money, ProrationError> {
    Ok(remaining_time_charge(price, period, change_at)?.checked_neg()?)
}

/// Charge for the remaining time of `price` from `change_at`: `+price × remaining / total`.
///
/// # Errors
/// As for [`unused_time_credit`].
pub fn remaining_time_charge(
    price: Money,
    period: (DateTime<Utc>, DateTime<Utc>),
    change_at: DateTime<Utc>,
) -> Result<Money, ProrationError> {
    let (remaining, total) = seconds(period, change_at)?;
    // Multiply first, divide once: the quotient is exact whenever it is a tie (x.5), so the
    // half-even rule sees the true value. Decimal overflow is an error, never a silent loss.
    let exact = Decimal::from(price.amount_minor())
        .checked_mul(Decimal::from(remaining))
        .and_then(|product| product.checked_div(Decimal::from(total)))
        .ok_or(MoneyError::Overflow)?;
    Ok(Money::new(round_minor(exact)?, price.currency()))
}

/// Both lines of a change from `old_price` to `new_price` at `change_at` within `period`.
///
/// # Errors
/// [`ProrationError::Money`] with [`MoneyError::CurrencyMismatch`] if the prices differ in
/// currency; otherwise as for [`unused_time_credit`].
pub fn prorate_change(
    old_price: Money,
    new_price: Money,
    period: (DateTime<Utc>, DateTime<Utc>),
    change_at: DateTime<Utc>,
) -> Result<ProrationLines, ProrationError> {
    if old_price.currency() != new_price.currency() {
        return Err(MoneyError::CurrencyMismatch {
            left: old_price.currency(),
            right: new_price.currency(),
        }
        .into());
    }
    Ok(ProrationLines {
        credit: unused_time_credit(old_price, period, change_at)?,
        charge: remaining_time_charge(new_price, period, change_at)?,
    })
}

/// `(remaining, total)` whole seconds, after checking `start ≤ change_at < end`.
/// Each instant is truncated to its Unix second, as Stripe's timestamps are.
fn seconds(
    (start, end): (DateTime<Utc>, DateTime<Utc>),
    change_at: DateTime<Utc>,
) -> Result<(i64, i64), ProrationError> {
    let since = |t: DateTime<Utc>, s: DateTime<Utc>| {
        t.timestamp()
            .checked_sub(s.timestamp())
            .ok_or(MoneyError::Overflow)
    };
    let total = since(end, start)?;
    if total <= 0 {
        return Err(ProrationError::EmptyPeriod { start, end });
    }
    if change_at < start || change_at >= end {
        return Err(ProrationError::OutsidePeriod {
            at: change_at,
            start,
            end,
        });
    }
    Ok((since(end, change_at)?, total))
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use ledger::money::Currency;
    use proptest::prelude::*;

    use super::*;
    use crate::pricing::rounding::div_half_even;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).expect("in range")
    }

    const START: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
    const DAY: i64 = 86_400;

    fn usd(a: i64) -> Money {
        Money::new(a, Currency::USD)
    }

    #[test]
    fn upgrade_at_half_of_a_30_day_period() {
        let period = (t(START), t(START + 30 * DAY));
        let lines =
            prorate_change(usd(1000), usd(3000), period, t(START + 15 * DAY)).expect("valid");
        assert_eq!(lines.credit, usd(-500));
        assert_eq!(lines.charge, usd(1500));
        assert_eq!(lines.net(), Ok(usd(1000)));
    }

    #[test]
    fn change_at_start_is_the_whole_price() {
        let period = (t(START), t(START + 31 * DAY));
        let lines = prorate_change(usd(999), usd(12_345), period, t(START)).expect("valid");
        assert_eq!((lines.credit, lines.charge), (usd(-999), usd(12_345)));
    }

    #[test]
    fn lines_round_half_to_even() {
        // 1 s of 4 s remaining → 3/4 of the price; 10 × 3/4 = 7.5 → 8, 6 × 3/4 = 4.5 → 4.
        let period = (t(START), t(START + 4));
        assert_eq!(
            remaining_time_charge(usd(10), period, t(START + 1)),
            Ok(usd(8))
        );
        assert_eq!(
            remaining_time_charge(usd(6), period, t(START + 1)),
            Ok(usd(4))
        );
        assert_eq!(
            unused_time_credit(usd(6), period, t(START + 1)),
            Ok(usd(-4))
        );
        // 1/6 of 3 is exactly 0.5 → 0 (a tie computed exactly, not 0.5000…1).
        let six = (t(START), t(START + 6));
        assert_eq!(remaining_time_charge(usd(3), six, t(START + 5)), Ok(usd(0)));
        assert_eq!(remaining_time_charge(usd(9), six, t(START + 5)), Ok(usd(2)));
    }

    #[test]
    fn near_ties_with_huge_prices_are_exact() {
        // price × remaining / 400 days lands exactly on x.5, or one 34 560 000th beside it,
        // with quotients up to ~9.2e18 (the hardest case for 28-digit decimals).
        let total = 400 * DAY;
        let period = (t(START), t(START + total));
        let k = i64::MAX / total - 1;
        for remaining in [1, total - 1] {
            for offset in [-1, 0, 1] {
                let price = k * total + total / 2 + offset;
                let n = i128::from(price) * i128::from(remaining);
                let tie = n.rem_euclid(i128::from(total)) * 2 == i128::from(total);
                assert_eq!(tie, offset == 0, "{remaining} {offset}");
                let expected = div_half_even(n, i128::from(total));
                let charge =
                    remaining_time_charge(usd(price), period, t(START + total - remaining));
                assert_eq!(charge.map(|m| i128::from(m.amount_minor())), Ok(expected));
            }
        }
    }

    #[test]
    fn sub_second_instants_count_whole_seconds() {
        let period = (t(START), t(START + 10));
        let at = t(START + 4) + TimeDelta::milliseconds(900);
        assert_eq!(remaining_time_charge(usd(100), period, at), Ok(usd(60)));
    }

    #[test]
    fn errors() {
        let period = (t(START), t(START + DAY));
        let mismatch = prorate_change(usd(1), Money::new(1, Currency::EUR), period, t(START));
        assert_eq!(
            mismatch,
            Err(ProrationError::Money(MoneyError::CurrencyMismatch {
                left: Currency::USD,
                right: Currency::EUR
            }))
        );
        for at in [t(START - 1), t(START + DAY), t(START + DAY + 1)] {
            assert_eq!(
                remaining_time_charge(usd(1), period, at),
                Err(ProrationError::OutsidePeriod {
                    at,
                    start: t(START),
                    end: t(START + DAY)
                })
            );
        }
        let sub_second = (t(START), t(START) + TimeDelta::milliseconds(999));
        for (start, end) in [(t(START), t(START)), (t(START + 1), t(START)), sub_second] {
            assert_eq!(
                unused_time_credit(usd(1), (start, end), start),
                Err(ProrationError::EmptyPeriod { start, end })
            );
        }
        assert_eq!(
            remaining_time_charge(usd(i64::MAX), (t(START), t(START + 400 * DAY)), t(START)),
            Ok(usd(i64::MAX))
        );
        assert_eq!(
            unused_time_credit(Money::new(i64::MIN, Currency::USD), period, t(START)),
            Err(ProrationError::Money(MoneyError::Overflow))
        );
    }

    fn currency() -> impl Strategy<Value = Currency> {
        prop_oneof![
            Just(Currency::USD),
            Just(Currency::JPY),
            Just(Currency::KWD)
        ]
    }

    proptest! {
        /// Issue 3 item 7: credit + charge is the price difference for the remaining time,
        /// within one minor unit per line.
        #[test]
        fn net_is_the_price_difference_for_the_remaining_time(
            currency in currency(),
            old in 0..=1_000_000_000_i64,
            new in 0..=1_000_000_000_i64,
            (total, elapsed) in (1..=400 * DAY).prop_flat_map(|total| (Just(total), 0..total)),
        ) {
            let period = (t(START), t(START + total));
            let lines = prorate_change(
                Money::new(old, currency), Money::new(new, currency), period, t(START + elapsed),
            ).expect("valid");
            prop_assert_eq!(lines.credit.currency(), currency);
            prop_assert_eq!(lines.charge.currency(), currency);
            let remaining = i128::from(total - elapsed);
            let total = i128::from(total);
            // Each line is within half a minor unit of its exact value ...
            prop_assert!((i128::from(lines.credit.amount_minor()) * total
                + i128::from(old) * remaining).abs() * 2 <= total);
            prop_assert!((i128::from(lines.charge.amount_minor()) * total
                - i128::from(new) * remaining).abs() * 2 <= total);
            // ... so the net is within one minor unit of (new − old) × r / t (the issue allows 2).
            let net = i128::from(lines.net().expect("fits").amount_minor());
            prop_assert!((net * total - i128::from(new - old) * remaining).abs() <= total);
            prop_assert!(lines.credit.amount_minor() <= 0 && lines.charge.amount_minor() >= 0);
        }

        /// Each line is exactly `price × remaining / total` rounded half to even, for any price.
        #[test]
        fn lines_are_exactly_rounded(
            price in any::<i64>(),
            (total, elapsed) in (1..=400 * DAY).prop_flat_map(|total| (Just(total), 0..total)),
        ) {
            let period = (t(START), t(START + total));
            let at = t(START + elapsed);
            let charge = remaining_time_charge(usd(price), period, at).expect("fits");
            let exact = div_half_even(i128::from(price) * i128::from(total - elapsed), i128::from(total));
            prop_assert_eq!(i128::from(charge.amount_minor()), exact);
            match unused_time_credit(usd(price), period, at) {
                Ok(credit) => prop_assert_eq!(i128::from(credit.amount_minor()), -exact),
                Err(e) => prop_assert_eq!(e, ProrationError::Money(MoneyError::Overflow)),
            }
        }
    }
}
