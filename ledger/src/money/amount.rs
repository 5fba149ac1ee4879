//! `Money`: an integer count of minor units in one currency.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use super::{Currency, MoneyError};

/// An amount in integer minor units (cents, yen, fils) of `currency`.
///
/// JSON form: `{"amount": 1000, "currency": "usd"}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Money {
    amount: i64,
    currency: Currency,
}

impl Money {
    /// `amount_minor` minor units of `currency` (e.g. `Money::new(1000, USD)` is 10.00 USD).
    #[must_use]
    pub const fn new(amount_minor: i64, currency: Currency) -> Money {
        Money {
            amount: amount_minor,
            currency,
        }
    }

    #[must_use]
    pub const fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    /// Convenience: `Money::new` with a currency code to parse.
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] if `currency` is not in the table.
    pub fn parse_minor(amount: i64, currency: &str) -> Result<Money, MoneyError> {
        Ok(Money::new(amount, Currency::parse(currency)?))
    }

    #[must_use]
    pub const fn amount_minor(&self) -> i64 {
        self.amount
    }

    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    #[must_use]
    pub const fn is_negative(&self) -> bool {
        self.amount < 0
    }

    #[must_use]
    pub const fn is_zero(&self) -> bool {
        self.amount == 0
    }

    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] for different currencies, [`MoneyError::Overflow`]
    /// if the result does not fit in `i64`.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.with(self.amount.checked_add(other.amount))
    }

    /// # Errors
    /// As for [`Money::checked_add`].
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.with(self.amount.checked_sub(other.amount))
    }

    /// Multiplies by a whole quantity (e.g. seats). Fractions belong to the rounding code.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] if the result does not fit in `i64`.
    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        self.with(self.amount.checked_mul(factor))
    }

    /// # Errors
    /// [`MoneyError::Overflow`] for `i64::MIN`.
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        self.with(self.amount.checked_neg())
    }

    fn same_currency(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    fn with(self, amount: Option<i64>) -> Result<Money, MoneyError> {
        amount
            .map(|a| Money::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }
}

/// `10.00 USD`, `1000 JPY`, `1.234 KWD`, `-0.05 EUR`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = usize::from(self.currency.exponent());
        // unsigned_abs keeps i64::MIN exact; exponents are at most 4, so the divisor fits.
        let magnitude = self.amount.unsigned_abs();
        let divisor = 10_u64.pow(u32::from(self.currency.exponent()));
        let sign = if self.amount < 0 { "-" } else { "" };
        write!(f, "{sign}{}", magnitude / divisor)?;
        if exponent > 0 {
            write!(f, ".{:0exponent$}", magnitude % divisor)?;
        }
        f.write_char(' ')?;
        for ch in self.currency.code().chars() {
            f.write_char(ch.to_ascii_uppercase())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(amount: i64, code: &str) -> Money {
        Money::parse_minor(amount, code).expect("known code")
    }

    #[test]
    fn display() {
        assert_eq!(m(1000, "usd").to_string(), "10.00 USD");
        assert_eq!(m(1000, "jpy").to_string(), "1000 JPY");
        assert_eq!(m(1234, "kwd").to_string(), "1.234 KWD");
        assert_eq!(m(-5, "eur").to_string(), "-0.05 EUR");
        assert_eq!(m(0, "usd").to_string(), "0.00 USD");
        assert_eq!(m(7, "clf").to_string(), "0.0007 CLF");
        assert_eq!(m(-100, "jpy").to_string(), "-100 JPY");
        assert_eq!(m(i64::MIN, "usd").to_string(), "-92233720368547758.08 USD");
        assert_eq!(m(i64::MAX, "usd").to_string(), "92233720368547758.07 USD");
        assert_eq!(m(i64::MIN, "jpy").to_string(), "-9223372036854775808 JPY");
        assert_eq!(m(i64::MAX, "kwd").to_string(), "9223372036854775.807 KWD");
    }

    #[test]
    fn arithmetic() {
        let a = Money::new(150, Currency::USD);
        let b = Money::new(50, Currency::USD);
        assert_eq!(a.checked_add(b), Ok(Money::new(200, Currency::USD)));
        assert_eq!(b.checked_sub(a), Ok(Money::new(-100, Currency::USD)));
        assert_eq!(a.checked_mul(3), Ok(Money::new(450, Currency::USD)));
        assert_eq!(a.checked_neg(), Ok(Money::new(-150, Currency::USD)));
        assert!(a.checked_neg().is_ok_and(|n| n.is_negative()));
        assert!(Money::zero(Currency::JPY).is_zero());
        assert!(!a.is_zero() && !a.is_negative());
    }

    #[test]
    fn overflow_is_an_error() {
        let max = Money::new(i64::MAX, Currency::USD);
        let min = Money::new(i64::MIN, Currency::USD);
        let one = Money::new(1, Currency::USD);
        assert_eq!(max.checked_add(one), Err(MoneyError::Overflow));
        assert_eq!(min.checked_sub(one), Err(MoneyError::Overflow));
        assert_eq!(max.checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(min.checked_mul(-1), Err(MoneyError::Overflow));
        assert_eq!(min.checked_neg(), Err(MoneyError::Overflow));
    }

    #[test]
    fn currency_mismatch_is_an_error() {
        let usd = Money::new(1, Currency::USD);
        let eur = Money::new(1, Currency::EUR);
        let mismatch = MoneyError::CurrencyMismatch {
            left: Currency::USD,
            right: Currency::EUR,
        };
        assert_eq!(usd.checked_add(eur), Err(mismatch.clone()));
        assert_eq!(usd.checked_sub(eur), Err(mismatch));
    }

    #[test]
    fn parse_minor_rejects_unknown_currency() {
        assert_eq!(
            Money::parse_minor(1, "xyz"),
            Err(MoneyError::UnknownCurrency("xyz".into()))
        );
    }

    #[test]
    fn serde_round_trip() {
        let money = m(1000, "usd");
        let json = serde_json::to_value(money).expect("serializes");
        assert_eq!(json, serde_json::json!({"amount": 1000, "currency": "usd"}));
        let back: Money = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, money);
        let err = serde_json::from_str::<Money>(r#"{"amount": 1, "currency": "xyz"}"#)
            .expect_err("unknown currency");
        assert!(err.to_string().contains("unknown currency"), "{err}");
    }
}
