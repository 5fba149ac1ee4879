//! The one rounding rule of Kanizsa Billing: half to even ("banker's rounding"), to a whole
//! number of minor units. Every fractional amount in the domain goes through [`round_minor`].

use ledger::money::{Money, MoneyError};
use rust_decimal::{Decimal, RoundingStrategy};

/// Rounds a decimal number of *minor units* to a whole number of minor units, half to even:
/// `0.5 → 0`, `1.5 → 2`, `2.5 → 2`, `-0.5 → 0`, `-1.5 → -2`; anything else to the nearest.
///
/// # Errors
/// [`MoneyError::Overflow`] if the rounded value does not fit in an `i64`.
pub fn round_minor(value: Decimal) -> Result<i64, MoneyError> {
    let rounded = value.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven);
    i64::try_from(rounded).map_err(|_| MoneyError::Overflow)
}

/// `amount × rate`, rounded with [`round_minor`], in the currency of `amount`
/// (e.g. a discount of `0.15`, a tax fraction of `0.0825`, a proration factor).
///
/// # Errors
/// [`MoneyError::Overflow`] if the product does not fit in a `Decimal` or its rounded value does
/// not fit in an `i64`.
pub fn apply_rate(amount: Money, rate: Decimal) -> Result<Money, MoneyError> {
    let exact = Decimal::from(amount.amount_minor())
        .checked_mul(rate)
        .ok_or(MoneyError::Overflow)?;
    Ok(Money::new(round_minor(exact)?, amount.currency()))
}

/// `n / d` rounded half to even in plain integers (`d > 0`): the reference the tests compare
/// the `Decimal` computations with.
#[cfg(test)]
pub(crate) fn div_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n.div_euclid(d), n.rem_euclid(d));
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use ledger::money::Currency;
    use proptest::prelude::*;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("valid decimal")
    }

    #[test]
    fn half_to_even() {
        for (input, expected) in [
            ("0.5", 0),
            ("1.5", 2),
            ("2.5", 2),
            ("3.5", 4),
            ("-0.5", 0),
            ("-1.5", -2),
            ("-2.5", -2),
            ("0", 0),
            ("82.5", 82),
            ("86.625", 87),
        ] {
            assert_eq!(round_minor(d(input)), Ok(expected), "{input}");
        }
    }

    #[test]
    fn nearest_when_not_a_tie() {
        for (input, expected) in [
            ("0.4999999999", 0),
            ("0.5000000001", 1),
            ("2.51", 3),
            ("2.49", 2),
            ("-2.51", -3),
            ("-0.49", 0),
            ("61.7", 62),
            ("7", 7),
        ] {
            assert_eq!(round_minor(d(input)), Ok(expected), "{input}");
        }
    }

    #[test]
    fn large_values_and_overflow() {
        assert_eq!(round_minor(Decimal::from(i64::MAX)), Ok(i64::MAX));
        assert_eq!(round_minor(Decimal::from(i64::MIN)), Ok(i64::MIN));
        assert_eq!(round_minor(d("9223372036854775807.4")), Ok(i64::MAX));
        assert_eq!(round_minor(d("-9223372036854775808.5")), Ok(i64::MIN));
        assert_eq!(round_minor(d("9223372036854775806.5")), Ok(i64::MAX - 1));
        assert_eq!(
            round_minor(d("9223372036854775807.5")),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            round_minor(d("9223372036854775808")),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            round_minor(d("-9223372036854775809")),
            Err(MoneyError::Overflow)
        );
        assert_eq!(round_minor(Decimal::MAX), Err(MoneyError::Overflow));
        assert_eq!(round_minor(Decimal::MIN), Err(MoneyError::Overflow));
    }

    #[test]
    fn apply_rate_rounds_once_and_keeps_currency() {
        let usd = |a| Money::new(a, Currency::USD);
        assert_eq!(apply_rate(usd(1000), d("0.0825")), Ok(usd(82)));
        assert_eq!(apply_rate(usd(1050), d("0.0825")), Ok(usd(87)));
        assert_eq!(apply_rate(usd(-1000), d("0.0825")), Ok(usd(-82)));
        assert_eq!(apply_rate(usd(5), d("0.5")), Ok(usd(2)));
        assert_eq!(apply_rate(usd(7), d("0.5")), Ok(usd(4)));
        assert_eq!(
            apply_rate(Money::new(1234, Currency::KWD), d("0.05")),
            Ok(Money::new(62, Currency::KWD))
        );
        assert_eq!(apply_rate(usd(i64::MAX), Decimal::ONE), Ok(usd(i64::MAX)));
        assert_eq!(
            apply_rate(usd(i64::MAX), Decimal::TWO),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            apply_rate(usd(i64::MAX), Decimal::MAX),
            Err(MoneyError::Overflow)
        );
    }

    proptest! {
        /// A quotient computed in `Decimal` and rounded by `round_minor` is the exactly rounded
        /// quotient, ties included.
        #[test]
        fn rounded_quotient_is_exact(n in any::<i64>(), d in 1..100_000_000_i64) {
            let q = Decimal::from(n).checked_div(Decimal::from(d)).expect("no overflow");
            let expected = div_half_even(i128::from(n), i128::from(d));
            prop_assert_eq!(round_minor(q).map(i128::from), Ok(expected));
        }

        #[test]
        fn reference_agrees_on_ties(k in -1_000_000_i64..1_000_000) {
            let tie = Decimal::from(k) + Decimal::new(5, 1);
            let expected = div_half_even(i128::from(k) * 2 + 1, 2);
            prop_assert_eq!(round_minor(tie).map(i128::from), Ok(expected));
        }
    }
}
