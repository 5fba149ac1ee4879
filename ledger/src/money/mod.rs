//! Money: amounts in integer minor units of an ISO-4217 currency.
//!
//! - A [`Money`] is an `i64` count of the currency's *minor unit* (cents for USD, yen for
//!   JPY, fils for KWD) plus a [`Currency`]. There are no floats anywhere in this module.
//! - Each [`Currency`] carries its ISO-4217 minor-unit exponent (JPY 0, USD 2, KWD 3,
//!   CLF 4), taken from a static table; unknown codes are rejected at parse time.
//! - Arithmetic is checked: overflow and currency mismatches are [`MoneyError`]s, never
//!   panics or silent wrap-around.
//! - This module never rounds. Rates, fractions and the single rounding rule (half-even)
//!   live in the `commands` crate; whatever reaches a `Money` is already a whole number of
//!   minor units.

mod amount;
mod currency;

pub use amount::Money;
pub use currency::Currency;

/// Errors from parsing currencies and from checked money arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The input is not a 3-letter ISO-4217 code in our table.
    #[error("unknown currency: {0}")]
    UnknownCurrency(String),
    /// Arithmetic between two different currencies.
    #[error("currency mismatch: {left} vs {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    /// The result does not fit in an `i64` of minor units.
    #[error("amount overflow")]
    Overflow,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        assert_eq!(
            MoneyError::UnknownCurrency("xyz".into()).to_string(),
            "unknown currency: xyz"
        );
        let e = MoneyError::CurrencyMismatch {
            left: Currency::USD,
            right: Currency::EUR,
        };
        assert_eq!(e.to_string(), "currency mismatch: usd vs eur");
        assert_eq!(MoneyError::Overflow.to_string(), "amount overflow");
    }
}
