//! Which tax rates apply to a customer: those of its country, and of its state when a rate
//! names one. Kept in memory, caught up before each use from the `TaxRateCreated` events of the
//! log (read through the index on event type; tax rates are few and never change).

use ledger::event::Position;
use ledger::ids::TaxRateId;
use ledger::store::{EventStore, StoreError};
use tokio::sync::Mutex;

use crate::customer::TaxLocation;
use crate::pricing::TaxRate;
use crate::stored::from_json;
use crate::tax_rate::TaxRateCreated;

/// Events read per page while catching up.
const PAGE: u32 = 1_000;

#[derive(Default)]
pub(super) struct TaxIndex {
    seen: Mutex<(Position, Vec<TaxRateCreated>)>,
}

impl TaxIndex {
    /// The rates that apply at `location`, in creation order.
    pub(super) async fn applicable(
        &self,
        store: &dyn EventStore,
        location: &TaxLocation,
    ) -> Result<Vec<(TaxRateId, TaxRate)>, StoreError> {
        let mut seen = self.seen.lock().await;
        loop {
            // Only tax-rate events (an index on event type): the rest of the log is not read.
            let page = store
                .read_page_filtered(seen.0, PAGE, None, Some("TaxRateCreated"))
                .await?;
            let Some(last) = page.last() else { break };
            seen.0 = last.position;
            for e in &page {
                let created: TaxRateCreated = from_json(&e.payload).ok_or_else(|| {
                    StoreError::Corrupt(format!("unreadable TaxRateCreated at {}", e.position))
                })?;
                seen.1.push(created);
            }
        }
        Ok(seen
            .1
            .iter()
            .filter(|r| r.country == location.country)
            .filter(|r| r.state.is_none() || r.state == location.state)
            .map(|r| (r.tax_rate_id, r.rate))
            .collect())
    }
}
