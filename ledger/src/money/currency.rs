//! ISO-4217 currencies and their minor-unit exponents.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::MoneyError;

/// One row of the currency table: lowercase alphabetic code and minor-unit exponent.
#[derive(PartialEq, Eq, Hash)]
struct CurrencyInfo {
    code: &'static str,
    exponent: u8,
}

const fn c(code: &'static str, exponent: u8) -> CurrencyInfo {
    CurrencyInfo { code, exponent }
}

/// ISO-4217 List One (published 2026-01-01), every code with a defined minor unit, sorted by
/// code (lookups binary-search it). Plus four withdrawn codes Stripe still accepts for
/// charges, with their last ISO exponent: `ang`, `bgn`, `sll`, `std`.
#[rustfmt::skip]
static TABLE: [CurrencyInfo; 169] = [
    c("aed", 2), c("afn", 2), c("all", 2), c("amd", 2), c("ang", 2), c("aoa", 2),
    c("ars", 2), c("aud", 2), c("awg", 2), c("azn", 2), c("bam", 2), c("bbd", 2),
    c("bdt", 2), c("bgn", 2), c("bhd", 3), c("bif", 0), c("bmd", 2), c("bnd", 2),
    c("bob", 2), c("bov", 2), c("brl", 2), c("bsd", 2), c("btn", 2), c("bwp", 2),
    c("byn", 2), c("bzd", 2), c("cad", 2), c("cdf", 2), c("che", 2), c("chf", 2),
    c("chw", 2), c("clf", 4), c("clp", 0), c("cny", 2), c("cop", 2), c("cou", 2),
    c("crc", 2), c("cup", 2), c("cve", 2), c("czk", 2), c("djf", 0), c("dkk", 2),
    c("dop", 2), c("dzd", 2), c("egp", 2), c("ern", 2), c("etb", 2), c("eur", 2),
    c("fjd", 2), c("fkp", 2), c("gbp", 2), c("gel", 2), c("ghs", 2), c("gip", 2),
    c("gmd", 2), c("gnf", 0), c("gtq", 2), c("gyd", 2), c("hkd", 2), c("hnl", 2),
    c("htg", 2), c("huf", 2), c("idr", 2), c("ils", 2), c("inr", 2), c("iqd", 3),
    c("irr", 2), c("isk", 0), c("jmd", 2), c("jod", 3), c("jpy", 0), c("kes", 2),
    c("kgs", 2), c("khr", 2), c("kmf", 0), c("kpw", 2), c("krw", 0), c("kwd", 3),
    c("kyd", 2), c("kzt", 2), c("lak", 2), c("lbp", 2), c("lkr", 2), c("lrd", 2),
    c("lsl", 2), c("lyd", 3), c("mad", 2), c("mdl", 2), c("mga", 2), c("mkd", 2),
    c("mmk", 2), c("mnt", 2), c("mop", 2), c("mru", 2), c("mur", 2), c("mvr", 2),
    c("mwk", 2), c("mxn", 2), c("mxv", 2), c("myr", 2), c("mzn", 2), c("nad", 2),
    c("ngn", 2), c("nio", 2), c("nok", 2), c("npr", 2), c("nzd", 2), c("omr", 3),
    c("pab", 2), c("pen", 2), c("pgk", 2), c("php", 2), c("pkr", 2), c("pln", 2),
    c("pyg", 0), c("qar", 2), c("ron", 2), c("rsd", 2), c("rub", 2), c("rwf", 0),
    c("sar", 2), c("sbd", 2), c("scr", 2), c("sdg", 2), c("sek", 2), c("sgd", 2),
    c("shp", 2), c("sle", 2), c("sll", 2), c("sos", 2), c("srd", 2), c("ssp", 2),
    c("std", 2), c("stn", 2), c("svc", 2), c("syp", 2), c("szl", 2), c("thb", 2),
    c("tjs", 2), c("tmt", 2), c("tnd", 3), c("top", 2), c("try", 2), c("ttd", 2),
    c("twd", 2), c("tzs", 2), c("uah", 2), c("ugx", 0), c("usd", 2), c("usn", 2),
    c("uyi", 0), c("uyu", 2), c("uyw", 4), c("uzs", 2), c("ved", 2), c("ves", 2),
    c("vnd", 0), c("vuv", 0), c("wst", 2), c("xad", 2), c("xaf", 0), c("xcd", 2),
    c("xcg", 2), c("xof", 0), c("xpf", 0), c("yer", 2), c("zar", 2), c("zmw", 2),
    c("zwg", 2),
];

/// An ISO-4217 currency: a cheap copyable handle into the static table.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(&'static CurrencyInfo);

impl Currency {
    pub const USD: Currency = Currency::known("usd");
    pub const EUR: Currency = Currency::known("eur");
    pub const GBP: Currency = Currency::known("gbp");
    pub const JPY: Currency = Currency::known("jpy");
    pub const KWD: Currency = Currency::known("kwd");

    /// Compile-time lookup for the constants above; a missing code fails the build.
    const fn known(code: &str) -> Currency {
        let mut i = 0;
        while i < TABLE.len() {
            if TABLE[i].code.eq_ignore_ascii_case(code) {
                return Currency(&TABLE[i]);
            }
            i += 1;
        }
        panic!("currency code missing from TABLE");
    }

    /// Parses a 3-letter ISO-4217 code in either case (`"usd"`, `"USD"`).
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] for anything that is not a code in the table.
    pub fn parse(input: &str) -> Result<Currency, MoneyError> {
        let unknown = || MoneyError::UnknownCurrency(input.to_owned());
        let bytes = input.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(unknown());
        }
        let lower = input.to_ascii_lowercase();
        TABLE
            .binary_search_by(|info| info.code.cmp(lower.as_str()))
            .map(|i| Currency(&TABLE[i]))
            .map_err(|_| unknown())
    }

    /// The lowercase ISO-4217 code, e.g. `"usd"`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        self.0.code
    }

    /// Number of minor-unit digits: 0 for JPY, 2 for USD, 3 for KWD.
    #[must_use]
    pub fn exponent(&self) -> u8 {
        self.0.exponent
    }

    /// Every currency in the table, in code order.
    pub fn all() -> impl Iterator<Item = Currency> {
        TABLE.iter().map(Currency)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).expect("known code")
    }

    #[test]
    #[rustfmt::skip]
    fn iso_exponents() {
        for (code, exp) in [
            ("jpy", 0), ("krw", 0), ("clp", 0), ("vnd", 0), ("xaf", 0), ("xof", 0),
            ("xpf", 0), ("bif", 0), ("djf", 0), ("gnf", 0), ("kmf", 0), ("pyg", 0),
            ("rwf", 0), ("ugx", 0), ("vuv", 0), ("isk", 0), ("usd", 2), ("eur", 2),
            ("huf", 2), ("twd", 2), ("mga", 2), ("bhd", 3), ("jod", 3), ("kwd", 3),
            ("omr", 3), ("tnd", 3), ("lyd", 3), ("iqd", 3), ("clf", 4),
        ] {
            assert_eq!(cur(code).exponent(), exp, "{code}");
        }
    }

    #[test]
    fn parse_normalizes_case() {
        assert_eq!(cur("usd"), Currency::USD);
        assert_eq!(cur("USD"), Currency::USD);
        assert_eq!(cur("Usd").code(), "usd");
        assert_eq!("EUR".parse::<Currency>(), Ok(Currency::EUR));
    }

    #[test]
    fn parse_rejects_bad_input() {
        for bad in [
            "xyz",
            "",
            "us",
            "usdd",
            " usd",
            "us1",
            "üsd",
            "日本円",
            "u\u{0}d",
        ] {
            assert_eq!(
                Currency::parse(bad),
                Err(MoneyError::UnknownCurrency(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn table_codes_are_lowercase_sorted_unique() {
        for info in &TABLE {
            assert!(info.code.len() == 3 && info.code.bytes().all(|b| b.is_ascii_lowercase()));
            assert!(info.exponent <= 4, "{}", info.code);
        }
        assert!(
            TABLE.windows(2).all(|w| w[0].code < w[1].code),
            "sorted and unique"
        );
        assert_eq!(Currency::all().count(), TABLE.len());
        assert!(Currency::all().all(|c| Currency::parse(c.code()) == Ok(c)));
    }

    #[test]
    fn stripe_charge_currencies_present() {
        let stripe = "usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd \
            bnd bob brl bsd bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd \
            egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr isk \
            jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd \
            mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php \
            pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sll sos srd std stn \
            szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf \
            yer zar zmw";
        for code in stripe.split_whitespace() {
            assert!(Currency::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn display_debug_and_serde() {
        assert_eq!(Currency::USD.to_string(), "usd");
        assert_eq!(format!("{:?}", Currency::KWD), "kwd");
        assert_eq!(
            serde_json::to_string(&Currency::JPY).ok().as_deref(),
            Some("\"jpy\"")
        );
        let back: Currency = serde_json::from_str("\"GBP\"").expect("valid");
        assert_eq!(back, Currency::GBP);
        let err = serde_json::from_str::<Currency>("\"xyz\"").expect_err("unknown");
        assert!(err.to_string().contains("unknown currency"), "{err}");
        assert!(serde_json::from_str::<Currency>("42").is_err());
    }
}
