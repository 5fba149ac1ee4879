//! Our charges by the gateway's id for them (`pi_…`), read from the log as it grows: for gateway
//! events that do not echo our key (refunds and disputes name the gateway's charge only).

use std::collections::HashMap;

use ledger::event::{Position, RecordedEvent};
use ledger::ids::ChargeId;
use ledger::store::{EventStore, StoreError, read_categories};

const PAGE: u32 = 5_000;

#[derive(Debug, Default)]
pub(super) struct ChargeIndex {
    after: Position,
    /// `(gateway, gateway charge id)` → ours.
    by_gateway_id: HashMap<(String, String), ChargeId>,
    /// Ours → its gateway, from `ChargeRequested`.
    gateway_of: HashMap<ChargeId, String>,
}

impl ChargeIndex {
    pub(super) async fn catch_up(&mut self, store: &dyn EventStore) -> Result<(), StoreError> {
        loop {
            let page = read_categories(store, self.after, PAGE, &["charge"]).await?;
            for e in &page.events {
                self.observe(e);
            }
            self.after = self.after.max(page.through);
            if !page.more {
                return Ok(());
            }
        }
    }

    fn observe(&mut self, e: &RecordedEvent) {
        if e.stream_id.category() != "charge" {
            return;
        }
        let Some(id) = e.payload["charge_id"]
            .as_str()
            .and_then(|s| s.parse::<ChargeId>().ok())
        else {
            return;
        };
        match e.event_type.as_str() {
            "ChargeRequested" => {
                if let Some(g) = e.payload["gateway"].as_str() {
                    self.gateway_of.insert(id, g.to_string());
                }
            }
            "ChargeSucceeded" | "ChargeFailed" | "ChargeProcessing" => {
                if let (Some(g), Some(gid)) = (
                    self.gateway_of.get(&id),
                    e.payload["gateway_charge_id"].as_str(),
                ) {
                    self.by_gateway_id.insert((g.clone(), gid.to_string()), id);
                }
            }
            _ => {}
        }
    }

    pub(super) fn get(&self, gateway: &str, gateway_charge_id: &str) -> Option<ChargeId> {
        self.by_gateway_id
            .get(&(gateway.to_string(), gateway_charge_id.to_string()))
            .copied()
    }
}
