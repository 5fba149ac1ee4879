//! `gateway_events`: every webhook delivery recorded (`GatewayEventReceived`), by the id of that
//! recorded event, with what it led to — the events on our charges whose `causation_id` names
//! it. Status `received` until the first such event, then `applied`. The raw body stays in the
//! log only; this read model keeps the envelope.

use commands::gateway_event::{GatewayEventReceived, RECEIVED};
use ledger::event::RecordedEvent;
use serde::{Deserialize, Serialize};

use crate::projection::{Doc, Projection, ProjectionError, ReadSet, Table, body_of, timestamp};

const NAME: &str = "gateway_events";

/// The `gateway_events` projection.
pub struct GatewayEvents;

/// One delivery as the read model keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayEventDoc {
    /// The recorded event's id (a UUID): the `causation_id` of what it led to.
    pub id: String,
    pub gateway: String,
    /// The gateway's event id (`evt_…`, `WH-…`).
    pub gateway_event_id: String,
    /// The gateway's event type.
    pub event_type: String,
    /// When the gateway made it (unix seconds).
    pub created: i64,
    pub livemode: bool,
    /// Log position of the recorded delivery.
    pub position: i64,
    /// The events it caused, in log order.
    #[serde(default)]
    pub caused: Vec<Caused>,
}

/// An event a delivery caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caused {
    pub event_type: String,
    pub stream_id: String,
    pub position: i64,
}

impl Projection for GatewayEvents {
    fn name(&self) -> &'static str {
        NAME
    }

    fn table(&self) -> Table {
        Table::Docs
    }

    fn listed(&self) -> bool {
        true
    }

    fn reads(&self, event: &RecordedEvent) -> Vec<String> {
        if event.event_type == RECEIVED {
            return vec![event.event_id.to_string()];
        }
        // Only the reactor names a delivery as the cause of a charge's event.
        match (&event.metadata.causation_id, event.stream_id.category()) {
            (Some(cause), "charge") if uuid::Uuid::parse_str(cause).is_ok() => vec![cause.clone()],
            _ => Vec::new(),
        }
    }

    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError> {
        if event.event_type == RECEIVED {
            let r: GatewayEventReceived = serde_json::from_value(event.payload.clone())
                .map_err(|e| ProjectionError::unreadable(NAME, event, e.to_string()))?;
            let doc = GatewayEventDoc {
                id: event.event_id.to_string(),
                gateway: r.gateway,
                gateway_event_id: r.gateway_event_id,
                event_type: r.event_type,
                created: r.created,
                livemode: r.livemode,
                position: event.position.0,
                caused: Vec::new(),
            };
            set.put(
                doc.id.clone(),
                Doc {
                    customer: None,
                    status: Some("received".into()),
                    created: timestamp(event.recorded_at),
                    position: event.position.0,
                    body: body_of(&doc)
                        .map_err(|e| ProjectionError::unreadable(NAME, event, e.to_string()))?,
                },
            );
            return Ok(());
        }
        let Some(cause) = event.metadata.causation_id.as_deref() else {
            return Ok(());
        };
        let Some(prior) = set.get(self.name(), cause)?.cloned() else {
            return Ok(());
        };
        let mut doc: GatewayEventDoc = prior
            .body_as()
            .map_err(|e| ProjectionError::unreadable(NAME, event, e.to_string()))?;
        doc.caused.push(Caused {
            event_type: event.event_type.clone(),
            stream_id: event.stream_id.to_string(),
            position: event.position.0,
        });
        set.put(
            cause.to_string(),
            Doc {
                status: Some("applied".into()),
                position: event.position.0,
                body: body_of(&doc)
                    .map_err(|e| ProjectionError::unreadable(NAME, event, e.to_string()))?,
                ..prior
            },
        );
        Ok(())
    }
}
