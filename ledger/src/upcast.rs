//! Upcasters: old events stay readable forever.
//!
//! An event is stored once, with the `schema_version` it was written with, and never rewritten.
//! When a payload's shape changes, the new code registers a function that turns version `n` of
//! that event type into version `n + 1`; readers receive the newest shape. The hash chain is always
//! checked against the stored bytes, never the upcast ones.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::event::RecordedEvent;

type UpcastFn = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// The registered upcasters, keyed by `(event_type, from_version)`.
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, i32), UpcastFn>,
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step `from_version -> from_version + 1` for `event_type`.
    pub fn register(
        mut self,
        event_type: &str,
        from_version: i32,
        step: impl Fn(Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.to_string(), from_version), Arc::new(step));
        self
    }

    /// Applies every step that fits, in order, until the newest version.
    pub fn apply(&self, mut event: RecordedEvent) -> RecordedEvent {
        if self.steps.is_empty() {
            return event;
        }
        while let Some(step) = self
            .steps
            .get(&(event.event_type.clone(), event.schema_version))
        {
            event.payload = step(std::mem::take(&mut event.payload));
            event.schema_version += 1;
        }
        event
    }
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.steps.keys()).finish()
    }
}
