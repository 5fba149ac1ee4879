//! Pure money-and-time building blocks of the billing domain: no I/O, no clock, no events.
//!
//! # Money rules
//!
//! - **Amounts are integers** in the currency's minor unit ([`Money`](ledger::money::Money),
//!   ISO-4217 exponents: JPY 0, USD 2, KWD 3), everywhere: prices, lines, taxes, totals.
//! - **[`Decimal`](rust_decimal::Decimal) is only for rates and fractions**: tax
//!   percentages, proration factors (`remaining / total` seconds), discounts. Never `f32`/`f64`.
//! - **One rounding rule**, half to even ("banker's rounding"), in one place:
//!   [`rounding::round_minor`]. A fractional amount becomes money only through it, exactly
//!   once per computed value:
//!   - [`rounding::apply_rate`]: `amount × rate` (exclusive tax, discounts);
//!   - [`proration`]: each line, `price × remaining / total` (credit and charge separately);
//!   - [`tax`]: the exclusive tax, or the net inside an inclusive amount (the other part is the
//!     exact difference, so `net + tax == gross`).
//!
//!   Products are formed before the one division, so ties (`x.5`) are seen exactly.
//! - **Checked arithmetic**: overflow is a [`MoneyError::Overflow`](ledger::money::MoneyError),
//!   never a panic or a wrap-around.
//!
//! # Time
//!
//! [`calendar`]: billing intervals (day / week / month / year × count, at most a year) and the
//! period boundaries they cut from a billing-cycle anchor, months with end-of-month clamping
//! (anchor Jan 31 → Feb 28/29 → Mar 31), always counted from the anchor.

pub mod calendar;
pub mod proration;
pub mod rounding;
pub mod tax;
pub mod tiers;

pub use calendar::{Interval, IntervalError, IntervalUnit, period_boundary, period_containing};
pub use proration::{
    ProrationError, ProrationLines, prorate_change, remaining_time_charge, unused_time_credit,
};
pub use rounding::{apply_rate, round_minor};
pub use tax::{TaxError, TaxRate, TaxSplit};
pub use tiers::Tier;
