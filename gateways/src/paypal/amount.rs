//! PayPal's money: `{"currency_code": "USD", "value": "19.99"}`, the value a decimal string with
//! the currency's ISO-4217 number of decimals (`"500"` yen, `"1.234"` dinars). Integer
//! arithmetic only: an amount never goes through a float.

use ledger::money::{Currency, Money};
use serde::{Deserialize, Serialize};

use crate::gateway::GatewayError;

/// PayPal's `money` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaypalAmount {
    /// The upper-case ISO-4217 code, e.g. `"USD"`.
    pub currency_code: String,
    /// The amount as a decimal string, e.g. `"19.99"`.
    pub value: String,
}

impl PaypalAmount {
    /// `money` as PayPal writes it.
    ///
    /// # Errors
    /// [`GatewayError::InvalidRequest`] when `money` is not positive: PayPal moves no zero or
    /// negative amounts.
    pub fn of(money: Money) -> Result<Self, GatewayError> {
        let currency = money.currency();
        format_value(money.amount_minor(), currency.exponent())
            .filter(|_| money.amount_minor() > 0)
            .map(|value| Self {
                currency_code: currency_code(currency),
                value,
            })
            .ok_or_else(|| {
                GatewayError::InvalidRequest(format!("paypal: amount must be positive: {money}"))
            })
    }

    /// The amount in minor units, when the currency is known and the value is well formed.
    pub fn to_money(&self) -> Option<Money> {
        let currency = Currency::parse(&self.currency_code).ok()?;
        parse_value(&self.value, currency.exponent()).map(|minor| Money::new(minor, currency))
    }
}

/// The upper-case ISO-4217 code PayPal expects (`Currency::code` is lower-case).
pub fn currency_code(currency: Currency) -> String {
    currency.code().to_ascii_uppercase()
}

/// `minor` units as a decimal string with `exponent` decimals: `(1999, 2)` is `"19.99"`,
/// `(500, 0)` is `"500"`, `(1234, 3)` is `"1.234"`. `None` for a negative amount or an exponent
/// too large for an `i64` scale.
pub fn format_value(minor: i64, exponent: u8) -> Option<String> {
    if minor < 0 {
        return None;
    }
    if exponent == 0 {
        return Some(minor.to_string());
    }
    let scale = 10_i64.checked_pow(u32::from(exponent))?;
    Some(format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = usize::from(exponent)
    ))
}

/// A decimal string back to minor units: digits, then for a currency with decimals optionally a
/// point and at most `exponent` digits (`"19.9"` is 1990 cents). `None` for anything else: a sign,
/// a point without digits, more decimals than the currency has, an overflow, over 32 characters
/// (PayPal's limit).
pub fn parse_value(value: &str, exponent: u8) -> Option<i64> {
    if value.is_empty() || value.len() > 32 {
        return None;
    }
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let decimals = fraction.len();
    if whole.is_empty() || !digits(whole) || !digits(fraction) || decimals > usize::from(exponent) {
        return None;
    }
    if value.contains('.') && decimals == 0 {
        return None;
    }
    let scale = 10_i64.checked_pow(u32::from(exponent))?;
    let mut minor = whole.parse::<i64>().ok()?.checked_mul(scale)?;
    if decimals > 0 {
        let pad = 10_i64.checked_pow(u32::try_from(usize::from(exponent) - decimals).ok()?)?;
        minor = minor.checked_add(fraction.parse::<i64>().ok()?.checked_mul(pad)?)?;
    }
    Some(minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_the_currency_exponent() {
        let cases = [
            (1999, Currency::USD, "USD", "19.99"),
            (5, Currency::USD, "USD", "0.05"),
            (100, Currency::EUR, "EUR", "1.00"),
            (500, Currency::JPY, "JPY", "500"),
            (1234, Currency::KWD, "KWD", "1.234"),
            (7, Currency::KWD, "KWD", "0.007"),
        ];
        for (minor, currency, code, value) in cases {
            let a = PaypalAmount::of(Money::new(minor, currency)).unwrap();
            assert_eq!((a.currency_code.as_str(), a.value.as_str()), (code, value));
            assert_eq!(a.to_money(), Some(Money::new(minor, currency)), "{value}");
        }
        let huge = format_value(i64::MAX, 2).unwrap();
        assert_eq!(huge, "92233720368547758.07");
        assert_eq!(parse_value(&huge, 2), Some(i64::MAX));
    }

    #[test]
    fn zero_and_negative_amounts_are_refused() {
        for minor in [0, -1] {
            let e = PaypalAmount::of(Money::new(minor, Currency::USD)).unwrap_err();
            assert!(matches!(e, GatewayError::InvalidRequest(_)), "{e:?}");
        }
        assert_eq!(format_value(-5, 2), None);
    }

    #[test]
    fn parsing_is_strict_about_decimals() {
        assert_eq!(parse_value("19.9", 2), Some(1990));
        assert_eq!(parse_value("19", 2), Some(1900));
        assert_eq!(parse_value("0.05", 2), Some(5));
        assert_eq!(parse_value("500", 0), Some(500));
        for bad in [
            "", ".5", "5.", "19.999", "-1.00", "+1", "1,00", "1e3", " 1", "500.0",
        ] {
            let exponent = if bad == "500.0" { 0 } else { 2 };
            assert_eq!(parse_value(bad, exponent), None, "{bad:?}");
        }
        assert_eq!(parse_value("92233720368547758.08", 2), None);
        assert_eq!(parse_value(&"9".repeat(33), 0), None);
    }

    #[test]
    fn unknown_currencies_have_no_money() {
        let a = PaypalAmount {
            currency_code: "XXQ".into(),
            value: "1.00".into(),
        };
        assert_eq!(a.to_money(), None);
    }
}
