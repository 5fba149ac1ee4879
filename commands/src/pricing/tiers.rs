//! Graduated tiers (Stripe's `tiers_mode: graduated`): each unit is priced by the tier it falls
//! in — units 1–10 at one price, 11–50 at another, the rest at a third — and a tier's flat fee
//! is added once any unit falls in it.

use ledger::money::{Currency, Money, MoneyError};
use serde::{Deserialize, Serialize};

/// Most tiers on one price.
pub const TIERS_MAX: usize = 10;
/// Largest unit or flat amount of a tier, in minor units.
pub const TIER_AMOUNT_MAX: i64 = 99_999_999;

/// One tier: units up to `up_to` (inclusive; `None` for the last, unbounded tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    pub up_to: Option<u64>,
    pub unit_amount: i64,
    #[serde(default)]
    pub flat_amount: i64,
}

/// Why a list of tiers is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tiers: 2 to {TIERS_MAX}, `up_to` strictly increasing from 1, only the last without `up_to`, amounts from 0 to {TIER_AMOUNT_MAX}"
)]
pub struct TierError;

/// The units of one tier that a quantity reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierUse {
    /// First and last unit of the tier (`None`: unbounded).
    pub first: u64,
    pub last: Option<u64>,
    /// Units of the quantity in this tier (≥ 1).
    pub quantity: u64,
    pub unit_amount: i64,
    pub flat_amount: i64,
}

/// Checks a list of tiers.
///
/// # Errors
/// [`TierError`].
pub fn check(tiers: &[Tier]) -> Result<(), TierError> {
    if !(2..=TIERS_MAX).contains(&tiers.len()) {
        return Err(TierError);
    }
    let amounts_ok = tiers.iter().all(|t| {
        (0..=TIER_AMOUNT_MAX).contains(&t.unit_amount)
            && (0..=TIER_AMOUNT_MAX).contains(&t.flat_amount)
    });
    let (last, bounded) = tiers.split_last().ok_or(TierError)?;
    let mut previous = 0;
    for t in bounded {
        match t.up_to {
            Some(up_to) if up_to > previous => previous = up_to,
            _ => return Err(TierError),
        }
    }
    if !amounts_ok || last.up_to.is_some() {
        return Err(TierError);
    }
    Ok(())
}

/// How `quantity` units spread over the tiers (only the tiers it reaches).
#[must_use]
pub fn spread(tiers: &[Tier], quantity: u64) -> Vec<TierUse> {
    let mut used = vec![];
    let mut first = 1u64;
    for t in tiers {
        if quantity < first {
            break;
        }
        let last = t.up_to;
        let top = last.map_or(quantity, |l| l.min(quantity));
        used.push(TierUse {
            first,
            last,
            quantity: top - first + 1,
            unit_amount: t.unit_amount,
            flat_amount: t.flat_amount,
        });
        match last {
            Some(l) => first = l.saturating_add(1),
            None => break,
        }
    }
    used
}

/// The price of `quantity` units: the sum over the tiers reached of units × unit amount plus
/// the flat amount.
///
/// # Errors
/// [`MoneyError::Overflow`].
pub fn total(tiers: &[Tier], quantity: u64, currency: Currency) -> Result<Money, MoneyError> {
    let mut sum = Money::zero(currency);
    for u in spread(tiers, quantity) {
        let units = i64::try_from(u.quantity).map_err(|_| MoneyError::Overflow)?;
        let part = Money::new(u.unit_amount, currency).checked_mul(units)?;
        sum = sum
            .checked_add(part)?
            .checked_add(Money::new(u.flat_amount, currency))?;
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn usd() -> Currency {
        Currency::parse("usd").unwrap()
    }

    fn tiers() -> Vec<Tier> {
        vec![
            Tier {
                up_to: Some(10),
                unit_amount: 500,
                flat_amount: 0,
            },
            Tier {
                up_to: Some(50),
                unit_amount: 400,
                flat_amount: 1000,
            },
            Tier {
                up_to: None,
                unit_amount: 300,
                flat_amount: 0,
            },
        ]
    }

    #[test]
    fn units_are_priced_by_the_tier_they_fall_in() {
        // 10 × 500 + (40 × 400 + 1000) + 5 × 300 = 5000 + 17000 + 1500
        assert_eq!(total(&tiers(), 55, usd()).unwrap().amount_minor(), 23_500);
        assert_eq!(total(&tiers(), 10, usd()).unwrap().amount_minor(), 5_000);
        // The flat fee comes with the first unit of its tier.
        assert_eq!(
            total(&tiers(), 11, usd()).unwrap().amount_minor(),
            5_000 + 400 + 1000
        );
        assert_eq!(total(&tiers(), 0, usd()).unwrap().amount_minor(), 0);
        let used = spread(&tiers(), 55);
        assert_eq!(
            used.iter().map(|u| u.quantity).collect::<Vec<_>>(),
            [10, 40, 5]
        );
        assert_eq!((used[2].first, used[2].last), (51, None));
    }

    #[test]
    fn bad_tiers_are_refused() {
        let mut t = tiers();
        assert!(check(&t).is_ok());
        t[1].up_to = Some(10);
        assert!(check(&t).is_err(), "not increasing");
        let mut t = tiers();
        t[2].up_to = Some(100);
        assert!(check(&t).is_err(), "last bounded");
        assert!(check(&tiers()[..1]).is_err(), "one tier");
        let mut t = tiers();
        t[0].unit_amount = -1;
        assert!(check(&t).is_err());
    }

    #[test]
    fn huge_quantities_overflow_as_errors() {
        assert!(total(&tiers(), u64::MAX, usd()).is_err());
    }

    proptest! {
        #[test]
        fn the_tiers_reached_add_up_to_the_quantity(q in 0u64..10_000) {
            let used: u64 = spread(&tiers(), q).iter().map(|u| u.quantity).sum();
            prop_assert_eq!(used, q);
        }

        #[test]
        fn one_more_unit_never_costs_less(q in 0u64..10_000) {
            let a = total(&tiers(), q, usd()).unwrap();
            let b = total(&tiers(), q + 1, usd()).unwrap();
            prop_assert!(b.amount_minor() > a.amount_minor());
        }
    }
}
