//! Tax rates and the split of an amount into net, tax and gross.
//!
//! A rate is a percentage with at most four decimal places (`"8.25"`, `"19"`, `"0.0001"`).
//! *Exclusive* rates add tax on top of the amount; *inclusive* rates find the tax inside it.
//! Either way exactly one value is rounded (with [`round_minor`]) and the other is the exact
//! difference, so `net + tax == gross` always holds to the minor unit.

use ledger::money::{Money, MoneyError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::rounding::{apply_rate, round_minor};

/// At most this many digits after the decimal point in a percentage.
pub const MAX_PERCENTAGE_DECIMALS: usize = 4;

/// Why a percentage was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxError {
    /// Not a plain decimal string (digits, optionally `.` and more digits).
    #[error("tax percentage {0:?} is not a decimal number such as \"8.25\"")]
    Malformed(String),
    /// Below 0 or above 100.
    #[error("tax percentage {0:?} is not between 0 and 100")]
    OutOfRange(String),
    /// More than [`MAX_PERCENTAGE_DECIMALS`] decimal places.
    #[error("tax percentage {0:?} has more than 4 decimal places")]
    TooPrecise(String),
}

/// A tax rate: `percentage` in `[0, 100]`, inclusive (contained in prices) or exclusive (added).
///
/// JSON: `{"percentage": "8.25", "inclusive": false}` (the percentage as a decimal string,
/// validated when deserializing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawTaxRate", into = "RawTaxRate")]
pub struct TaxRate {
    percentage: Decimal,
    inclusive: bool,
}

/// How an amount splits under a [`TaxRate`]; `net + tax == gross`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxSplit {
    /// The amount before tax.
    pub net: Money,
    /// The tax.
    pub tax: Money,
    /// The amount with tax.
    pub gross: Money,
}

impl TaxRate {
    /// Parses `percentage`: a decimal string `0 ≤ p ≤ 100` with at most four decimal places
    /// (`"8.25"`, `"19"`, `"0.0001"`, `"100"`). No sign, exponent, spaces or bare `.`.
    ///
    /// # Errors
    /// [`TaxError::Malformed`], [`TaxError::OutOfRange`] or [`TaxError::TooPrecise`].
    pub fn new(percentage: &str, inclusive: bool) -> Result<TaxRate, TaxError> {
        Ok(TaxRate {
            percentage: parse_percentage(percentage)?,
            inclusive,
        })
    }

    /// The percentage, as given (`8.25` for 8.25 %).
    #[must_use]
    pub const fn percentage(&self) -> Decimal {
        self.percentage
    }

    /// Whether amounts already contain this tax.
    #[must_use]
    pub const fn is_inclusive(&self) -> bool {
        self.inclusive
    }

    /// Splits `amount` (the net amount for an exclusive rate, the gross amount for an inclusive
    /// one). Exclusive: `tax = round_minor(amount × p / 100)`, `gross = amount + tax`.
    /// Inclusive: `net = round_minor(amount / (1 + p / 100))`, `tax = amount − net`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if a result does not fit in an `i64`.
    pub fn tax_on(&self, amount: Money) -> Result<TaxSplit, MoneyError> {
        let fraction = self
            .percentage
            .checked_div(Decimal::ONE_HUNDRED)
            .ok_or(MoneyError::Overflow)?;
        if self.inclusive {
            let net = Decimal::ONE
                .checked_add(fraction)
                .and_then(|divisor| Decimal::from(amount.amount_minor()).checked_div(divisor))
                .ok_or(MoneyError::Overflow)?;
            let net = Money::new(round_minor(net)?, amount.currency());
            Ok(TaxSplit {
                net,
                tax: amount.checked_sub(net)?,
                gross: amount,
            })
        } else {
            let tax = apply_rate(amount, fraction)?;
            Ok(TaxSplit {
                net: amount,
                tax,
                gross: amount.checked_add(tax)?,
            })
        }
    }
}

fn parse_percentage(input: &str) -> Result<Decimal, TaxError> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = |s: &str| match s.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(s),
    };
    if !well_formed(input) {
        return Err(match input.strip_prefix('-') {
            Some(rest) if well_formed(rest) => TaxError::OutOfRange(input.to_owned()),
            _ => TaxError::Malformed(input.to_owned()),
        });
    }
    let (whole, fraction) = input.split_once('.').unwrap_or((input, ""));
    if fraction.len() > MAX_PERCENTAGE_DECIMALS {
        return Err(TaxError::TooPrecise(input.to_owned()));
    }
    if whole.trim_start_matches('0').len() > 3 {
        return Err(TaxError::OutOfRange(input.to_owned()));
    }
    let value =
        Decimal::from_str_exact(input).map_err(|_| TaxError::Malformed(input.to_owned()))?;
    if value > Decimal::ONE_HUNDRED {
        return Err(TaxError::OutOfRange(input.to_owned()));
    }
    Ok(value)
}

/// The JSON shape of a [`TaxRate`], before validation.
#[derive(Serialize, Deserialize)]
struct RawTaxRate {
    percentage: String,
    inclusive: bool,
}

impl TryFrom<RawTaxRate> for TaxRate {
    type Error = TaxError;

    fn try_from(raw: RawTaxRate) -> Result<Self, Self::Error> {
        TaxRate::new(&raw.percentage, raw.inclusive)
    }
}

impl From<TaxRate> for RawTaxRate {
    fn from(rate: TaxRate) -> Self {
        RawTaxRate {
            percentage: rate.percentage.to_string(),
            inclusive: rate.inclusive,
        }
    }
}

#[cfg(test)]
mod tests {
    use ledger::money::Currency;
    use proptest::prelude::*;

    use super::*;
    use crate::pricing::rounding::div_half_even;

    fn rate(p: &str, inclusive: bool) -> TaxRate {
        TaxRate::new(p, inclusive).expect("valid rate")
    }

    fn split(p: &str, inclusive: bool, amount: i64, currency: Currency) -> (i64, i64, i64) {
        let s = rate(p, inclusive)
            .tax_on(Money::new(amount, currency))
            .expect("fits");
        for m in [s.net, s.tax, s.gross] {
            assert_eq!(m.currency(), currency);
        }
        (
            s.net.amount_minor(),
            s.tax.amount_minor(),
            s.gross.amount_minor(),
        )
    }

    #[test]
    fn exact_values() {
        use Currency as C;
        assert_eq!(split("8.25", false, 1000, C::USD), (1000, 82, 1082)); // 82.5 → 82
        assert_eq!(split("8.25", false, 1050, C::USD), (1050, 87, 1137)); // 86.625 → 87
        assert_eq!(split("19", true, 1190, C::EUR), (1000, 190, 1190));
        assert_eq!(split("10", false, 1000, C::JPY), (1000, 100, 1100));
        assert_eq!(split("5", false, 1234, C::KWD), (1234, 62, 1296)); // 61.7 → 62
        assert_eq!(split("0", false, 1234, C::USD), (1234, 0, 1234));
        assert_eq!(split("0", true, 1234, C::USD), (1234, 0, 1234));
        assert_eq!(split("100", true, 3, C::USD), (2, 1, 3)); // 1.5 → 2
        assert_eq!(split("100", true, 5, C::USD), (2, 3, 5)); // 2.5 → 2
        assert_eq!(split("8.25", false, -1000, C::USD), (-1000, -82, -1082));
        assert_eq!(
            split("0.0001", false, 5_000_000, C::USD),
            (5_000_000, 5, 5_000_005)
        );
    }

    #[test]
    fn overflow_is_an_error() {
        let max = Money::new(i64::MAX, Currency::USD);
        assert_eq!(rate("1", false).tax_on(max), Err(MoneyError::Overflow));
        assert_eq!(rate("0", false).tax_on(max).map(|s| s.gross), Ok(max));
        assert!(rate("100", true).tax_on(max).is_ok());
        let min = Money::new(i64::MIN, Currency::USD);
        assert!(rate("100", true).tax_on(min).is_ok());
    }

    #[test]
    fn parsing() {
        for (ok, expected) in [
            ("8.25", "8.25"),
            ("19", "19"),
            ("0.0001", "0.0001"),
            ("0", "0"),
            ("100", "100"),
            ("100.0000", "100.0000"),
            ("007.5", "7.5"),
        ] {
            assert_eq!(rate(ok, false).percentage().to_string(), expected, "{ok}");
        }
        for (bad, err) in [
            ("-1", TaxError::OutOfRange("-1".into())),
            ("100.1", TaxError::OutOfRange("100.1".into())),
            ("100.0001", TaxError::OutOfRange("100.0001".into())),
            ("1000", TaxError::OutOfRange("1000".into())),
            (
                "99999999999999999999999999999999",
                TaxError::OutOfRange("99999999999999999999999999999999".into()),
            ),
            ("8.12345", TaxError::TooPrecise("8.12345".into())),
            ("abc", TaxError::Malformed("abc".into())),
            ("1e2", TaxError::Malformed("1e2".into())),
        ] {
            assert_eq!(TaxRate::new(bad, false), Err(err), "{bad}");
        }
        for bad in [
            "", ".", ".5", "8.", "+5", " 5", "5 ", "8,25", "1.2.3", "-", "--1", "NaN", "٣",
        ] {
            assert_eq!(
                TaxRate::new(bad, true),
                Err(TaxError::Malformed(bad.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json() {
        let vat = rate("19", true);
        let json = serde_json::to_value(vat).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"percentage": "19", "inclusive": true})
        );
        assert_eq!(serde_json::from_value::<TaxRate>(json).ok(), Some(vat));
        let bad = r#"{"percentage": "101", "inclusive": false}"#;
        assert!(serde_json::from_str::<TaxRate>(bad).is_err());
        let number = r#"{"percentage": 8.25, "inclusive": false}"#;
        assert!(serde_json::from_str::<TaxRate>(number).is_err());
    }

    proptest! {
        #[test]
        fn split_adds_up_and_matches_exact_rounding(
            amount in -(1_i64 << 60)..(1_i64 << 60),
            basis in 0..=1_000_000_i64, // percentage × 10 000
            inclusive in any::<bool>(),
        ) {
            let percentage = format!("{}.{:04}", basis / 10_000, basis % 10_000);
            let s = rate(&percentage, inclusive).tax_on(Money::new(amount, Currency::USD))
                .expect("fits");
            prop_assert_eq!(s.net.checked_add(s.tax), Ok(s.gross));
            let (a, b) = (i128::from(amount), i128::from(basis));
            if inclusive {
                prop_assert_eq!(s.gross.amount_minor(), amount);
                let net = div_half_even(a * 1_000_000, 1_000_000 + b);
                prop_assert_eq!(i128::from(s.net.amount_minor()), net);
            } else {
                prop_assert_eq!(s.net.amount_minor(), amount);
                prop_assert_eq!(i128::from(s.tax.amount_minor()), div_half_even(a * b, 1_000_000));
            }
            if amount >= 0 {
                prop_assert!(s.tax.amount_minor() >= 0);
                prop_assert!(s.net.amount_minor() >= 0);
            }
        }

        #[test]
        fn never_panics_on_any_amount(amount in any::<i64>(), basis in 0..=1_000_000_i64) {
            let percentage = format!("{}.{:04}", basis / 10_000, basis % 10_000);
            for inclusive in [false, true] {
                match rate(&percentage, inclusive).tax_on(Money::new(amount, Currency::JPY)) {
                    Ok(s) => prop_assert_eq!(s.net.checked_add(s.tax), Ok(s.gross)),
                    Err(e) => prop_assert_eq!(e, MoneyError::Overflow),
                }
            }
        }
    }
}
