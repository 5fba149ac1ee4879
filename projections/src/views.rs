//! Document read models: for each aggregate category, the aggregate's own folded state, kept
//! per instance, with the columns lists filter on.
//!
//! Each view folds its category's events with the write side's own `evolve`, so a read model can
//! never disagree with what a command would see; the API renders the same objects from either.
//! The body is the state as JSON: changing a state type means a replay (`billing replay`).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use commands::aggregate::Aggregate;
use commands::charge::{self, Charge, ChargeEvent};
use commands::customer::Customer;
use commands::invoice::Invoice;
use commands::plan::Plan;
use commands::stored::DomainEvent;
use commands::subscription::Subscription;
use commands::tax_rate::TaxRate;
use ledger::event::RecordedEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::projection::{Doc, Projection, ProjectionError, ReadSet, Table, body_of, timestamp};

/// The filter columns of a state.
pub struct Columns {
    pub customer: Option<String>,
    pub status: Option<String>,
    pub created: DateTime<Utc>,
}

type Fold<S> = fn(Option<S>, &RecordedEvent) -> Result<Option<S>, String>;

/// One document per stream of `category`: the folded state.
pub struct StateView<S> {
    name: &'static str,
    category: &'static str,
    fold: Fold<S>,
    columns: fn(&S) -> Columns,
}

impl<S> StateView<S> {
    /// The instance id of `event`'s stream when it belongs to this view.
    fn id_of<'e>(&self, event: &'e RecordedEvent) -> Option<&'e str> {
        let stream = event.stream_id.as_str();
        stream
            .strip_prefix(self.category)
            .and_then(|rest| rest.strip_prefix('-'))
    }
}

impl<S> Projection for StateView<S>
where
    S: Serialize + DeserializeOwned + Send + Sync,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn table(&self) -> Table {
        Table::Docs
    }

    fn listed(&self) -> bool {
        true
    }

    fn reads(&self, event: &RecordedEvent) -> Vec<String> {
        self.id_of(event).map(str::to_string).into_iter().collect()
    }

    /// A document is its stream's state: none before the stream's first event.
    fn born(&self, event: &RecordedEvent) -> Option<String> {
        (event.stream_version == 1)
            .then(|| self.id_of(event).map(str::to_string))
            .flatten()
    }

    fn apply(&self, set: &mut ReadSet, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.apply_all(set, &[event])
    }

    /// Each document is decoded once, folded through all of its events, and written once: the
    /// same rows as one event at a time, since `evolve` never drops a state once there is one.
    fn apply_all(
        &self,
        set: &mut ReadSet,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        // Per document: its state so far, and the last event that produced one.
        let mut folded: HashMap<&str, (Option<S>, Option<&RecordedEvent>)> = HashMap::new();
        for &event in events {
            let Some(id) = self.id_of(event) else {
                continue;
            };
            let unreadable = |reason: String| ProjectionError::unreadable(self.name, event, reason);
            let (state, changed) = match folded.entry(id) {
                Entry::Occupied(o) => o.into_mut(),
                Entry::Vacant(v) => {
                    let prior: Option<S> = set
                        .get(self.name, id)?
                        .map(Doc::body_as)
                        .transpose()
                        .map_err(|e| unreadable(format!("stored document: {e}")))?;
                    v.insert((prior, None))
                }
            };
            *state = (self.fold)(state.take(), event).map_err(unreadable)?;
            if state.is_some() {
                *changed = Some(event);
            }
        }
        for (id, (state, changed)) in folded {
            let (Some(state), Some(event)) = (state, changed) else {
                continue;
            };
            let columns = (self.columns)(&state);
            let body = body_of(&state)
                .map_err(|e| ProjectionError::unreadable(self.name, event, e.to_string()))?;
            set.put(
                id.to_string(),
                Doc {
                    customer: columns.customer,
                    status: columns.status,
                    created: timestamp(columns.created),
                    position: event.position.0,
                    body,
                },
            );
        }
        Ok(())
    }
}

/// Folds one event into an aggregate's state with the aggregate's own `evolve`.
fn fold_aggregate<A: Aggregate>(
    state: Option<A>,
    event: &RecordedEvent,
) -> Result<Option<A>, String> {
    let e = A::Event::from_stored(&event.event_type, &event.payload)
        .ok_or_else(|| format!("not a {} event", A::CATEGORY))?;
    Ok(A::evolve(state, &e, event.occurred_at))
}

fn fold_charge(state: Option<Charge>, event: &RecordedEvent) -> Result<Option<Charge>, String> {
    let e = ChargeEvent::from_stored(&event.event_type, &event.payload)
        .ok_or_else(|| "not a charge event".to_string())?;
    Ok(charge::evolve(state, &e, event.occurred_at))
}

fn view<A>(name: &'static str, columns: fn(&A) -> Columns) -> StateView<A>
where
    A: Aggregate,
{
    StateView {
        name,
        category: A::CATEGORY,
        fold: fold_aggregate::<A>,
        columns,
    }
}

pub fn customers() -> StateView<Customer> {
    view("customers", |c: &Customer| Columns {
        customer: Some(c.id.to_string()),
        status: Some(if c.erased() { "erased" } else { "active" }.into()),
        created: c.created,
    })
}

pub fn plans() -> StateView<Plan> {
    view("plans", |p: &Plan| Columns {
        customer: None,
        status: Some(if p.active { "active" } else { "archived" }.into()),
        created: p.created,
    })
}

pub fn tax_rates() -> StateView<TaxRate> {
    view("tax_rates", |t: &TaxRate| Columns {
        customer: None,
        status: None,
        created: t.created,
    })
}

pub fn subscriptions() -> StateView<Subscription> {
    view("subscriptions", |s: &Subscription| Columns {
        customer: Some(s.customer_id.to_string()),
        status: Some(s.status.as_str().into()),
        created: s.created,
    })
}

pub fn invoices() -> StateView<Invoice> {
    view("invoices", |i: &Invoice| Columns {
        customer: Some(i.customer_id.to_string()),
        status: Some(i.status.as_str().into()),
        created: i.created,
    })
}

pub fn charges() -> StateView<Charge> {
    StateView {
        name: "charges",
        category: "charge",
        fold: fold_charge,
        columns: |c: &Charge| Columns {
            customer: c.customer_id.map(|id| id.to_string()),
            status: Some(c.status.as_str().into()),
            created: c.created,
        },
    }
}
