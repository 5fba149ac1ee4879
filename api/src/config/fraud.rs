//! Fraud screening rules from the environment (all off unless set):
//!
//! - `BILLING_FRAUD_VELOCITY_CUSTOMER=N[:review|block]`: at most N charge attempts per customer
//!   per hour, then review or block (default block);
//! - `BILLING_FRAUD_VELOCITY_PAYMENT_METHOD=N[:review|block]`: the same per payment method;
//! - `BILLING_FRAUD_REVIEW_ABOVE=usd:50000,eur:50000`: amounts above (minor units) are reviewed;
//! - `BILLING_FRAUD_BLOCK_ABOVE=usd:500000`: amounts above are blocked;
//! - `BILLING_FRAUD_COUNTRY_MISMATCH=review|block`: the customer's billing country differs from
//!   the payment method's;
//! - `BILLING_FRAUD_GATEWAY_RISK_REVIEW=elevated`, `BILLING_FRAUD_GATEWAY_RISK_BLOCK=highest`:
//!   the gateway's risk level (`normal`, `elevated`, `highest`) at or above which an
//!   authorization is held for review / canceled (charges at a gateway that reports one —
//!   Stripe — are then authorized first and captured once allowed).

use std::collections::HashMap;

use commands::charge::fraud::{FraudRules, RiskLevel, RuleAction};
use ledger::money::Currency;

/// The rules `get` (an environment lookup) describes.
pub fn rules(get: impl Fn(&str) -> Option<String>) -> Result<FraudRules, String> {
    let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let velocity = |name: &str| -> Result<Option<(u32, RuleAction)>, String> {
        let Some(v) = get(name) else { return Ok(None) };
        let (n, action) = v.split_once(':').unwrap_or((v.as_str(), "block"));
        let n = n
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}: {v:?} is not N or N:review|block with N > 0"))?;
        Ok(Some((n, action_of(name, action)?)))
    };
    Ok(FraudRules {
        velocity_per_customer: velocity("BILLING_FRAUD_VELOCITY_CUSTOMER")?,
        velocity_per_method: velocity("BILLING_FRAUD_VELOCITY_PAYMENT_METHOD")?,
        review_above: thresholds(
            "BILLING_FRAUD_REVIEW_ABOVE",
            get("BILLING_FRAUD_REVIEW_ABOVE"),
        )?,
        block_above: thresholds(
            "BILLING_FRAUD_BLOCK_ABOVE",
            get("BILLING_FRAUD_BLOCK_ABOVE"),
        )?,
        country_mismatch: get("BILLING_FRAUD_COUNTRY_MISMATCH")
            .map(|a| action_of("BILLING_FRAUD_COUNTRY_MISMATCH", &a))
            .transpose()?,
        gateway_risk_review: risk("BILLING_FRAUD_GATEWAY_RISK_REVIEW", get)?,
        gateway_risk_block: risk("BILLING_FRAUD_GATEWAY_RISK_BLOCK", get)?,
    })
}

fn risk(name: &str, get: impl Fn(&str) -> Option<String>) -> Result<Option<RiskLevel>, String> {
    get(name)
        .map(|v| {
            RiskLevel::parse(v.trim())
                .ok_or_else(|| format!("{name}: {v:?} is not normal, elevated or highest"))
        })
        .transpose()
}

fn action_of(name: &str, action: &str) -> Result<RuleAction, String> {
    match action.trim() {
        "review" => Ok(RuleAction::Review),
        "block" => Ok(RuleAction::Block),
        other => Err(format!("{name}: {other:?} is not review or block")),
    }
}

fn thresholds(name: &str, value: Option<String>) -> Result<HashMap<Currency, i64>, String> {
    let Some(value) = value else {
        return Ok(HashMap::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let bad = || format!("{name}: {pair:?} is not currency:minor_units (e.g. usd:50000)");
            let (c, n) = pair.split_once(':').ok_or_else(bad)?;
            let currency = Currency::parse(c.trim()).map_err(|_| bad())?;
            let n = n
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(bad)?;
            Ok((currency, n))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn nothing_set_screens_nothing() {
        assert!(!rules(env(&[])).unwrap().enabled());
    }

    #[test]
    fn every_rule_parses() {
        let r = rules(env(&[
            ("BILLING_FRAUD_VELOCITY_CUSTOMER", "10"),
            ("BILLING_FRAUD_VELOCITY_PAYMENT_METHOD", "3:review"),
            ("BILLING_FRAUD_REVIEW_ABOVE", "usd:50000, jpy:100000"),
            ("BILLING_FRAUD_BLOCK_ABOVE", "USD:500000"),
            ("BILLING_FRAUD_COUNTRY_MISMATCH", "review"),
            ("BILLING_FRAUD_GATEWAY_RISK_REVIEW", "elevated"),
            ("BILLING_FRAUD_GATEWAY_RISK_BLOCK", " highest"),
        ]))
        .unwrap();
        assert_eq!(r.gateway_risk_review, Some(RiskLevel::Elevated));
        assert_eq!(r.gateway_risk_block, Some(RiskLevel::Highest));
        assert!(r.reads_gateway_risk());
        assert_eq!(r.velocity_per_customer, Some((10, RuleAction::Block)));
        assert_eq!(r.velocity_per_method, Some((3, RuleAction::Review)));
        assert_eq!(r.review_above.get(&Currency::JPY), Some(&100_000));
        assert_eq!(r.block_above.get(&Currency::USD), Some(&500_000));
        assert_eq!(r.country_mismatch, Some(RuleAction::Review));
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        for (k, v) in [
            ("BILLING_FRAUD_VELOCITY_CUSTOMER", "0"),
            ("BILLING_FRAUD_VELOCITY_CUSTOMER", "5:maybe"),
            ("BILLING_FRAUD_REVIEW_ABOVE", "usd"),
            ("BILLING_FRAUD_REVIEW_ABOVE", "xyz:10"),
            ("BILLING_FRAUD_BLOCK_ABOVE", "usd:-1"),
            ("BILLING_FRAUD_COUNTRY_MISMATCH", "allow"),
            ("BILLING_FRAUD_GATEWAY_RISK_REVIEW", "high"),
        ] {
            let e = rules(env(&[(k, v)])).unwrap_err();
            assert!(e.starts_with(k), "{e}");
        }
    }
}
