//! Refunds and credit notes live inside their charge and invoice documents; these read models
//! index them by their own id (`re_…`, `cn_…`), pointing at the document that holds them, so they
//! can be listed and fetched on their own. The read API renders them from the holder.

use commands::charge::ChargeEvent;
use commands::charge::refund::RefundEvent;
use commands::invoice::InvoiceEvent;
use commands::stored::DomainEvent;
use ledger::event::RecordedEvent;
use serde_json::value::RawValue;
use std::collections::HashMap;

use crate::projection::{Doc, Projection, ProjectionError, ReadSet, Table, body_of, timestamp};

/// `refunds`: refund id → `{"charge": "ch_…"}`, status `pending` / `succeeded` / `failed`.
pub struct Refunds;

/// `credit_notes`: credit note id → `{"invoice": "in_…"}`.
pub struct CreditNotes;

fn refund_of(event: &RecordedEvent) -> Option<RefundEvent> {
    let refund = matches!(
        event.event_type.as_str(),
        "RefundRequested" | "RefundSucceeded" | "RefundFailed"
    );
    if !refund || event.stream_id.category() != "charge" {
        return None;
    }
    match ChargeEvent::from_stored(&event.event_type, &event.payload)? {
        ChargeEvent::Refund(r) => Some(r),
        _ => None,
    }
}

impl Projection for Refunds {
    fn name(&self) -> &'static str {
        "refunds"
    }

    fn table(&self) -> Table {
        Table::Docs
    }

    fn listed(&self) -> bool {
        true
    }

    fn reads(&self, event: &RecordedEvent) -> Vec<String> {
        let refund = matches!(
            event.event_type.as_str(),
            "RefundRequested" | "RefundSucceeded" | "RefundFailed"
        );
        if !refund || event.stream_id.category() != "charge" {
            return Vec::new();
        }
        event
            .payload
            .get("refund_id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .into_iter()
            .collect()
    }

    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let (id, status) = match refund_of(event) {
            Some(RefundEvent::Requested(r)) => {
                let doc = Doc {
                    customer: None,
                    status: Some("pending".into()),
                    created: timestamp(event.occurred_at),
                    position: event.position.0,
                    body: pointer("charge", &r.charge_id.to_string(), event, self.name())?,
                };
                set.put(r.refund_id.to_string(), doc);
                return Ok(());
            }
            Some(RefundEvent::Succeeded(r)) => (r.refund_id.to_string(), "succeeded"),
            Some(RefundEvent::Failed(r)) => (r.refund_id.to_string(), "failed"),
            None => return Ok(()),
        };
        if let Some(prior) = set.get(self.name(), &id)?.cloned() {
            let doc = Doc {
                status: Some(status.into()),
                position: event.position.0,
                ..prior
            };
            set.put(id, doc);
        }
        Ok(())
    }
}

impl Projection for CreditNotes {
    fn name(&self) -> &'static str {
        "credit_notes"
    }

    fn table(&self) -> Table {
        Table::Docs
    }

    fn listed(&self) -> bool {
        true
    }

    fn reads(&self, event: &RecordedEvent) -> Vec<String> {
        if event.event_type != "CreditNoteIssued" || event.stream_id.category() != "invoice" {
            return Vec::new();
        }
        event
            .payload
            .get("credit_note_id")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .into_iter()
            .collect()
    }

    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if let Some((id, invoice)) = issued(event) {
            let doc = Doc {
                customer: None,
                status: None,
                created: timestamp(event.occurred_at),
                position: event.position.0,
                body: pointer("invoice", &invoice, event, self.name())?,
            };
            set.put(id, doc);
        }
        Ok(())
    }
}

/// `{"<holder>": "<id>"}`.
fn pointer(
    holder: &str,
    id: &str,
    event: &RecordedEvent,
    projection: &'static str,
) -> Result<Box<RawValue>, ProjectionError> {
    body_of(&[(holder, id)].into_iter().collect::<HashMap<_, _>>())
        .map_err(|e| ProjectionError::unreadable(projection, event, e.to_string()))
}

/// `(credit note id, invoice id)` of a `CreditNoteIssued`.
fn issued(event: &RecordedEvent) -> Option<(String, String)> {
    if event.event_type != "CreditNoteIssued" || event.stream_id.category() != "invoice" {
        return None;
    }
    match InvoiceEvent::from_stored(&event.event_type, &event.payload)? {
        InvoiceEvent::CreditNoteIssued(c) => {
            Some((c.credit_note_id.to_string(), c.invoice_id.to_string()))
        }
        _ => None,
    }
}
