//! Subscribing, changing, canceling: the subscription command, then the invoice it asks for
//! (the first period, an `always_invoice` proration, a final metered period).

use chrono::{DateTime, TimeDelta, Utc};
use ledger::event::Metadata;
use ledger::ids::{CustomerId, InvoiceId, PlanId, SubscriptionId};

use super::invoicing::items_of;
use super::{Billing, InvoiceRequest};
use crate::aggregate::{Aggregate, Executed};
use crate::charge::{IdempotencyDraft, Rendered, unrendered};
use crate::customer::{Customer, CustomerError};
use crate::error::CommandError;
use crate::invoice::BillingReason;
use crate::plan::{Plan, PlanError};
use crate::stored::decode_stream;
use crate::subscription::{
    BillingItem, NewSubscription, PlanSnapshot, Subscription, SubscriptionCommand,
    SubscriptionError, SubscriptionEvent, invoice_for_change, invoice_for_period,
};
use crate::test_clock::{TestClock, TestClockCommand};

/// A subscription to create.
#[derive(Debug, Clone)]
pub struct Subscribe {
    pub subscription_id: SubscriptionId,
    pub customer_id: CustomerId,
    pub plan_id: PlanId,
    pub quantity: Option<u32>,
    /// Overrides the plan's trial.
    pub trial_days: Option<u32>,
    pub billing_cycle_anchor: Option<DateTime<Utc>>,
}

type Render<'a> = &'a (dyn Fn(&Subscription) -> Rendered + Send + Sync);

impl Billing {
    /// Subscribes the customer (at its test clock's time when it has one) and invoices the
    /// first period; answers the subscription after its first payment attempt.
    ///
    /// # Errors
    /// A missing customer or plan, an archived plan, a plan without a price in the customer's
    /// currency, domain refusals, store failures.
    pub async fn subscribe(
        &self,
        req: Subscribe,
        metadata: &Metadata,
        draft: Option<&IdempotencyDraft>,
        render: Render<'_>,
    ) -> Result<Executed<Subscription>, CommandError> {
        let customer = self.customer(req.customer_id).await?;
        let plan = self
            .executor
            .load::<Plan>(&req.plan_id)
            .await?
            .state
            .ok_or(PlanError::NotFound)?;
        if !plan.active {
            return Err(CommandError::Precondition(format!(
                "plan {} is archived and takes no new subscriptions",
                plan.id
            )));
        }
        let currency = customer.currency.unwrap_or(plan.price.currency());
        let price = plan.price_in(currency).ok_or_else(|| {
            CommandError::Precondition(format!(
                "plan {} has no price in {}, the customer's currency",
                plan.id,
                currency.code()
            ))
        })?;
        let at = self.for_customer(&customer).await?;
        let now = at.now();
        let trial_days = req.trial_days.unwrap_or(plan.trial_days);
        let trial_end = (trial_days > 0)
            .then(|| now.checked_add_signed(TimeDelta::days(i64::from(trial_days))))
            .flatten();
        let create = SubscriptionCommand::Create(NewSubscription {
            subscription_id: req.subscription_id,
            customer_id: customer.id,
            plan: PlanSnapshot {
                plan_id: plan.id,
                name: plan.name.clone(),
                price,
                interval: plan.interval,
                usage_type: plan.usage_type,
                tiers: plan.tiers.clone(),
            },
            quantity: req.quantity.unwrap_or(1),
            trial_end,
            billing_cycle_anchor: req.billing_cycle_anchor,
        });
        // Refused input records nothing: decide first, then attach to the clock, then create.
        let events = Subscription::decide(None, create.clone(), now)?;
        at.check_asked(req.subscription_id, price.currency(), &customer, &events)
            .await?;
        if let Some(clock) = customer.test_clock {
            let add = TestClockCommand::AddSubscription(req.subscription_id);
            at.executor
                .execute::<TestClock>(&clock, add, metadata, None, &unrendered)
                .await?;
        }
        let done = at
            .executor
            .execute::<Subscription>(&req.subscription_id, create, metadata, draft, render)
            .await?;
        let sub = &done.state;
        let lines = at
            .recorded(sub.id, |e| match e {
                SubscriptionEvent::Created(c) => Some(c.invoice_lines.clone()),
                _ => None,
            })
            .await?;
        let id = invoice_for_period(sub.id, sub.current_period_start);
        at.invoice_lines(
            sub,
            &customer,
            id,
            BillingReason::SubscriptionCreate,
            lines,
            metadata,
        )
        .await?;
        at.reloaded(done).await
    }

    /// Runs a command on a subscription at its customer's time, then invoices what it asks to
    /// be invoiced now (an `always_invoice` change, the final period of a cancellation).
    ///
    /// # Errors
    /// Domain refusals, store failures.
    pub async fn command_subscription(
        &self,
        id: SubscriptionId,
        command: SubscriptionCommand,
        metadata: &Metadata,
        draft: Option<&IdempotencyDraft>,
        render: Render<'_>,
    ) -> Result<Executed<Subscription>, CommandError> {
        let sub = self
            .executor
            .load::<Subscription>(&id)
            .await?
            .state
            .ok_or(SubscriptionError::NotFound)?;
        let customer = self.customer(sub.customer_id).await?;
        let at = self.for_customer(&customer).await?;
        // Refused input — the command's or its invoice's — records nothing.
        let events = Subscription::decide(Some(&sub), command.clone(), at.now())?;
        at.check_asked(id, sub.currency(), &customer, &events)
            .await?;
        let before = at.executor.store().stream_version(&stream(id)?).await?;
        let done = at
            .executor
            .execute::<Subscription>(&id, command, metadata, draft, render)
            .await?;
        // Every invoice the new events ask for (a concurrent request's too: ids are derived,
        // so each is drafted once).
        for (invoice, reason, lines) in at.invoiced_now(id, before).await? {
            at.invoice_lines(&done.state, &customer, invoice, reason, lines, metadata)
                .await?;
        }
        at.reloaded(done).await
    }

    /// What the events after version `before` ask to invoice now.
    pub(super) async fn invoiced_now(
        &self,
        id: SubscriptionId,
        before: i64,
    ) -> Result<Vec<(InvoiceId, BillingReason, Vec<BillingItem>)>, CommandError> {
        let recorded = self.executor.store().read_stream(&stream(id)?).await?;
        let events: Vec<SubscriptionEvent> = decode_stream(&recorded)?;
        let mut out = vec![];
        for (e, r) in events.iter().zip(&recorded) {
            if r.stream_version <= before {
                continue;
            }
            if let Some((reason, lines)) = invoiced_by(e) {
                out.push((invoice_for_change(id, r.stream_version), reason, lines));
            }
        }
        Ok(out)
    }

    /// Checks the invoices `events` would ask for, as their drafts would be checked.
    pub(super) async fn check_asked(
        &self,
        sub: SubscriptionId,
        currency: ledger::money::Currency,
        customer: &Customer,
        events: &[SubscriptionEvent],
    ) -> Result<(), CommandError> {
        for (reason, lines) in lines_asked(events) {
            let request = InvoiceRequest {
                invoice_id: InvoiceId::derived(&format!("{sub}:check")),
                customer: customer.clone(),
                currency,
                subscription_id: Some(sub),
                period: None,
                reason,
                items: items_of(&lines, currency),
            };
            self.dry_run(&request, None).await?;
        }
        Ok(())
    }

    pub(super) async fn invoice_lines(
        &self,
        sub: &Subscription,
        customer: &Customer,
        invoice_id: InvoiceId,
        reason: BillingReason,
        lines: Vec<BillingItem>,
        metadata: &Metadata,
    ) -> Result<(), CommandError> {
        if lines.is_empty() {
            return Ok(());
        }
        let currency = sub.currency();
        let request = InvoiceRequest {
            invoice_id,
            customer: customer.clone(),
            currency,
            subscription_id: Some(sub.id),
            period: Some(sub.current_period()),
            reason,
            items: items_of(&lines, currency),
        };
        self.issue_invoice(request, metadata).await?;
        Ok(())
    }

    /// The first recorded event of the subscription that `pick` finds something in.
    pub(super) async fn recorded<T>(
        &self,
        id: SubscriptionId,
        pick: impl Fn(&SubscriptionEvent) -> Option<T>,
    ) -> Result<T, CommandError>
    where
        T: Default,
    {
        let recorded = self.executor.store().read_stream(&stream(id)?).await?;
        let events: Vec<SubscriptionEvent> = decode_stream(&recorded)?;
        Ok(events.iter().find_map(pick).unwrap_or_default())
    }

    pub(super) async fn customer(&self, id: CustomerId) -> Result<Customer, CommandError> {
        Ok(self
            .executor
            .load::<Customer>(&id)
            .await?
            .state
            .ok_or(CustomerError::NotFound)?)
    }

    /// `done` with the subscription as it is now (after its invoice's payment), and a position
    /// at or after the flow's last event.
    async fn reloaded(
        &self,
        done: Executed<Subscription>,
    ) -> Result<Executed<Subscription>, CommandError> {
        let loaded = self.executor.load::<Subscription>(&done.state.id).await?;
        // The flow's last event may be on another stream (the invoice, the charge).
        let head = self.executor.store().head().await?.position;
        Ok(Executed {
            state: loaded.state.unwrap_or(done.state),
            position: done.position.max(head),
            idempotency_stored: done.idempotency_stored,
        })
    }
}

pub(super) fn stream(id: SubscriptionId) -> Result<ledger::event::StreamId, CommandError> {
    ledger::event::StreamId::of("subscription", &id)
        .map_err(|e| ledger::store::StoreError::Corrupt(e.to_string()).into())
}

/// What an event of a change or cancellation asks to invoice at once.
pub(super) fn invoiced_by(e: &SubscriptionEvent) -> Option<(BillingReason, Vec<BillingItem>)> {
    match e {
        SubscriptionEvent::Updated(u) if u.invoice_now && !u.proration_items.is_empty() => {
            Some((BillingReason::SubscriptionUpdate, u.proration_items.clone()))
        }
        SubscriptionEvent::Canceled(c) if !c.final_lines.is_empty() => {
            Some((BillingReason::SubscriptionCycle, c.final_lines.clone()))
        }
        _ => None,
    }
}

/// The lines of every invoice `events` would ask for (to check them before recording).
pub(super) fn lines_asked(events: &[SubscriptionEvent]) -> Vec<(BillingReason, Vec<BillingItem>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Created(c) if !c.invoice_lines.is_empty() => {
                Some((BillingReason::SubscriptionCreate, c.invoice_lines.clone()))
            }
            SubscriptionEvent::Renewed(r) if !r.invoice_lines.is_empty() => {
                Some((BillingReason::SubscriptionCycle, r.invoice_lines.clone()))
            }
            other => invoiced_by(other),
        })
        .collect()
}
