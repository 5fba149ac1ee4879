//! Gapless invoice numbers per issuer.
//!
//! Number n of issuer `KB` is the n-th event of stream `invoice_number-KB`, appended with the
//! expected version n − 1: two finalizations racing for the same number cannot both win, and no
//! number is skipped. The event's id is derived from the invoice, so an invoice that got its
//! number and then failed to record it finds the same number again.

use ledger::event::{AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId};
use ledger::ids::InvoiceId;
use ledger::store::{AppendError, StoreError};
use serde_json::json;

use super::Billing;
use crate::error::CommandError;
use crate::invoice::format_number;

/// Attempts before giving up under contention.
const ATTEMPTS_MAX: usize = 64;

impl Billing {
    /// The invoice's number: the one it was given, or the next one.
    pub(super) async fn number_for(
        &self,
        invoice: InvoiceId,
        metadata: &Metadata,
    ) -> Result<String, CommandError> {
        let store = self.executor.store();
        let prefix = &self.config.invoice_prefix;
        let stream = StreamId::of("invoice_number", prefix)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let event_id = InvoiceId::derived(&format!("number:{prefix}:{invoice}")).as_uuid();
        for _ in 0..ATTEMPTS_MAX {
            if let Some(given) = store.read_event(event_id).await? {
                return given.payload["number"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| StoreError::Corrupt(format!("{stream}: no number")).into());
            }
            let version = store.stream_version(&stream).await?;
            let sequence = u64::try_from(version).unwrap_or(0).saturating_add(1);
            let number = format_number(prefix, sequence);
            let mut event = NewEvent::new(
                "InvoiceNumberAssigned",
                json!({"invoice_id": invoice, "number": number, "sequence": sequence}),
                self.now(),
            )
            .with_metadata(metadata.clone());
            event.event_id = event_id;
            let expected = match version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            match store
                .append(AppendRequest::new(stream.clone(), expected, vec![event]))
                .await
            {
                Ok(_) => return Ok(number),
                // Another invoice took this number, or this one got a number meanwhile.
                Err(AppendError::WrongExpectedVersion { .. } | AppendError::Invalid(_)) => {}
                Err(AppendError::Store(StoreError::Rejected(_))) => {}
                Err(AppendError::IdempotencyKeyExists { .. }) => {}
                Err(AppendError::Store(e)) => return Err(e.into()),
            }
        }
        Err(CommandError::Conflict(stream.to_string()))
    }
}
